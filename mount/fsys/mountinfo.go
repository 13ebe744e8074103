package fsys

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountEntry is one line of /proc/self/mountinfo (see proc_pid_mountinfo(5)).
type MountEntry struct {
	ID, ParentID int
	Major, Minor uint32 // st_dev of files on it (anonymous 0:N for btrfs and FUSE)
	Root         string // the directory of the filesystem mounted here
	MountPoint   string
	Options      string // per-mount options: rw, nosuid, relatime, ...
	FSType       string // ext4, fuse.cryptvol, ...
	Source       string // /dev/loop3, or what the filesystem says
	SuperOptions string // per-filesystem options
}

// Mounts lists the mounts visible to this process, in mount order.
func Mounts() ([]MountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return parseMountInfo(b)
}

func parseMountInfo(b []byte) ([]MountEntry, error) {
	var ms []MountEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 0 || len(f) < sep+4 {
			return nil, fmt.Errorf("mountinfo: line %d: malformed: %q", n, sc.Text())
		}
		var m MountEntry
		var err1, err2 error
		m.ID, err1 = strconv.Atoi(f[0])
		m.ParentID, err2 = strconv.Atoi(f[1])
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err3 := strconv.ParseUint(maj, 10, 32)
		mi, err4 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil || !ok || err3 != nil || err4 != nil {
			return nil, fmt.Errorf("mountinfo: line %d: malformed: %q", n, sc.Text())
		}
		m.Major, m.Minor = uint32(ma), uint32(mi)
		m.Root = unescapeMountInfo(f[3])
		m.MountPoint = unescapeMountInfo(f[4])
		m.Options = f[5]
		m.FSType = unescapeMountInfo(f[sep+1])
		m.Source = unescapeMountInfo(f[sep+2])
		m.SuperOptions = f[sep+3]
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return ms, nil
}

// unescapeMountInfo undoes the kernel's octal escapes (\040 for a space, and
// likewise tab, newline and backslash).
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// MountAt returns the mount whose mount point is dir (the topmost, if several
// are stacked there), and whether there is one. Only dir's parent is resolved
// through symlinks: dir itself may be a dead FUSE mount that cannot be stat'ed.
func MountAt(dir string) (MountEntry, bool, error) {
	dir, err := canonicalMountPoint(dir)
	if err != nil {
		return MountEntry{}, false, err
	}
	ms, err := Mounts()
	if err != nil {
		return MountEntry{}, false, err
	}
	var found MountEntry
	ok := false
	for _, m := range ms {
		if m.MountPoint == dir {
			found, ok = m, true
		}
	}
	return found, ok, nil
}

// IsMounted reports whether something is mounted on dir.
func IsMounted(dir string) (bool, error) {
	_, ok, err := MountAt(dir)
	return ok, err
}

// MountsOfDevice lists the mounts of the block device dev (such as
// /dev/loop3), matched by device number or, for filesystems like btrfs whose
// files carry an anonymous device number, by source path.
func MountsOfDevice(dev string) ([]MountEntry, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return nil, fmt.Errorf("mountinfo: %s: %w", dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("mountinfo: %s is not a block device", dev)
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	ms, err := Mounts()
	if err != nil {
		return nil, err
	}
	var out []MountEntry
	for _, m := range ms {
		if (m.Major == unix.Major(st.Rdev) && m.Minor == unix.Minor(st.Rdev)) || m.Source == real || m.Source == dev {
			out = append(out, m)
		}
	}
	return out, nil
}

func canonicalMountPoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mountinfo: %w", err)
	}
	if abs == "/" {
		return abs, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		// A missing parent cannot hold a mount; compare as given.
		return abs, nil
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}
