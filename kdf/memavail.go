package kdf

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memoryHeadroom returns how many bytes this process can use now without
// swapping or hitting a limit, and which bound that is: the smaller of the
// kernel's estimate of available memory (MemAvailable in /proc/meminfo, which
// counts reclaimable cache, unlike free memory, and excludes swap, unlike
// total RAM) and what is left below the memory limit of this process's cgroup
// and every cgroup above it (v2 memory.max, v1 hierarchical_memory_limit),
// where usage does not count the inactive page cache the kernel would reclaim.
// It returns 0 when it cannot tell. root is "/" except in tests.
func memoryHeadroom(root string) (uint64, string) {
	best, what := uint64(0), ""
	if kib, ok := fieldKiB(readFile(root, "proc/meminfo"), "MemAvailable:"); ok {
		best, what = kib*1024, "available memory"
	}
	if h, ok := cgroupHeadroom(root); ok && (best == 0 || h < best) {
		best, what = h, "the memory left in this process's cgroup"
	}
	return best, what
}

// unlimited is where a cgroup v1 limit that was never set lies
// (PAGE_COUNTER_MAX pages); anything as large means no limit.
const unlimited = 1 << 62

func cgroupHeadroom(root string) (uint64, bool) {
	cg := readFile(root, "proc/self/cgroup")
	mounts := readFile(root, "proc/self/mountinfo")
	best, found := uint64(0), false
	take := func(limit, usage uint64) {
		if limit >= unlimited {
			return
		}
		h := uint64(0)
		if limit > usage {
			h = limit - usage
		}
		if !found || h < best {
			best, found = h, true
		}
	}
	for line := range strings.Lines(string(cg)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "": // cgroup v2
			dir, base, ok := cgroupDir(root, mounts, "cgroup2", "", f[2])
			if !ok {
				continue
			}
			// The effective limit is the smallest headroom of this cgroup
			// and its ancestors up to the mount's root.
			for d := dir; ; d = filepath.Dir(d) {
				if max := strings.TrimSpace(string(readFile(d, "memory.max"))); max != "" && max != "max" {
					limit, err1 := strconv.ParseUint(max, 10, 64)
					usage, err2 := strconv.ParseUint(strings.TrimSpace(string(readFile(d, "memory.current"))), 10, 64)
					if err1 == nil && err2 == nil {
						inactive, _ := field(readFile(d, "memory.stat"), "inactive_file")
						take(limit, usage-min(usage, inactive))
					}
				}
				if d == base || d == filepath.Dir(d) {
					break
				}
			}
		case strings.Contains(","+f[1]+",", ",memory,"): // cgroup v1
			dir, _, ok := cgroupDir(root, mounts, "cgroup", "memory", f[2])
			if !ok {
				continue
			}
			stat := readFile(dir, "memory.stat")
			limit, ok1 := field(stat, "hierarchical_memory_limit")
			usage, err := strconv.ParseUint(strings.TrimSpace(string(readFile(dir, "memory.usage_in_bytes"))), 10, 64)
			if ok1 && err == nil {
				inactive, _ := field(stat, "total_inactive_file")
				take(limit, usage-min(usage, inactive))
			}
		}
	}
	return best, found
}

// cgroupDir finds where the cgroup path (as /proc/self/cgroup names it) lies
// on a mount of fstype (with option opt in its super options, for v1): its
// directory and the mount point.
func cgroupDir(root string, mountinfo []byte, fstype, opt, path string) (dir, mountPoint string, ok bool) {
	for line := range strings.Lines(string(mountinfo)) {
		f := strings.Fields(line)
		sep := -1
		for i, w := range f {
			if w == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(f) < sep+4 || f[sep+1] != fstype {
			continue
		}
		if opt != "" && !strings.Contains(","+f[sep+3]+",", ","+opt+",") {
			continue
		}
		mroot, mp := f[3], f[4]
		rel, err := filepath.Rel(mroot, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = "." // a cgroup namespace: the mount's root is ours
		}
		mp = filepath.Join(root, mp)
		d := filepath.Join(mp, rel)
		if _, err := os.Stat(d); err == nil {
			return d, mp, true
		}
	}
	return "", "", false
}

func readFile(dir, name string) []byte {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return b
}

// field returns the number after name in a "name value" file (memory.stat).
func field(b []byte, name string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == name {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// fieldKiB returns the number of a "Name:   123 kB" line of /proc/meminfo.
func fieldKiB(b []byte, name string) (uint64, bool) {
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
