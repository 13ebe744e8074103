package fsys

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// BusyError is returned when a mount cannot be unmounted because something
// still uses it. It names what could be found, like fuser -m: processes with
// their working or root directory, an open file, a mapped file or their
// program on it, mounts inside it, and loop devices backed by a file on it.
// errors.Is(err, syscall.EBUSY) holds.
type BusyError struct {
	Dir     string
	Holders []Holder
	Err     error // the unmount error, EBUSY
}

// Holder is one user of a busy mount. PID is 0 for users that are not
// processes (a mount inside, a loop device).
type Holder struct {
	PID     int
	Command string // the process's comm, or "mount" or "loop"
	Use     string // "working directory /mnt/x/sub", "open file /mnt/x/a", ...
}

func (e *BusyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unmount %s: target is busy", e.Dir)
	if len(e.Holders) == 0 {
		b.WriteString(" (no holder found in this mount namespace)")
	}
	for i, h := range e.Holders {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(h.String())
	}
	return b.String()
}

func (e *BusyError) Unwrap() error { return e.Err }

func (h Holder) String() string {
	if h.PID == 0 {
		return h.Use
	}
	return fmt.Sprintf("pid %d (%s) %s", h.PID, h.Command, h.Use)
}

// Busy builds the *BusyError for the mount at dir that err (EBUSY) refused,
// naming its holders if it can.
func Busy(dir string, err error) error {
	e := &BusyError{Dir: dir, Err: err}
	m, ok, lerr := MountAt(dir)
	if lerr == nil && ok {
		e.Holders = findHolders(m)
	}
	return e
}

// findHolders scans /proc and /sys for users of mount m. It never stats
// files: a hung FUSE filesystem anywhere must not hang the scan. Open files
// are matched exactly by the mnt_id in /proc/PID/fdinfo, mapped files by
// device number, directories and programs by path.
func findHolders(m MountEntry) []Holder {
	var hs []Holder
	under := func(p string) bool {
		return p == m.MountPoint || strings.HasPrefix(p, strings.TrimSuffix(m.MountPoint, "/")+"/")
	}
	all, _ := Mounts()
	for _, c := range all {
		if c.ParentID == m.ID && c.ID != m.ID {
			hs = append(hs, Holder{Command: "mount", Use: "mount " + c.MountPoint + " inside it"})
		}
	}
	if loops, err := LoopBackings(); err == nil {
		for _, l := range loops {
			if under(l.Backing) {
				hs = append(hs, Holder{Command: "loop", Use: "loop device " + l.Dev + " backed by " + l.Backing})
			}
		}
	}

	procs, _ := filepath.Glob("/proc/[0-9]*")
	mntID := strconv.Itoa(m.ID)
	devField := fmt.Sprintf("%02x:%02x", m.Major, m.Minor)
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(p + "/comm")
		if err != nil {
			continue // gone
		}
		h := Holder{PID: pid, Command: strings.TrimSpace(string(comm))}
		add := func(use string) {
			h.Use = use
			hs = append(hs, h)
		}
		for _, l := range []struct{ link, what string }{
			{"cwd", "working directory "}, {"root", "root directory "}, {"exe", "program "},
		} {
			if t, err := os.Readlink(p + "/" + l.link); err == nil && under(t) {
				add(l.what + t)
			}
		}
		fds, _ := os.ReadDir(p + "/fd")
		for _, fd := range fds {
			info, err := os.ReadFile(p + "/fdinfo/" + fd.Name())
			if err != nil || fdinfoField(info, "mnt_id") != mntID {
				continue
			}
			t, _ := os.Readlink(p + "/fd/" + fd.Name())
			add("open file " + t)
		}
		var mapped []string
		if maps, err := os.ReadFile(p + "/maps"); err == nil {
			for line := range strings.Lines(string(maps)) {
				f := strings.Fields(line)
				if len(f) >= 6 && f[4] != "0" && (f[3] == devField || under(f[5])) && !slices.Contains(mapped, f[5]) {
					mapped = append(mapped, f[5])
					add("mapped file " + f[5])
				}
			}
		}
	}
	return hs
}

// fdinfoField returns the value of "name:" in a /proc/PID/fdinfo/N file.
func fdinfoField(info []byte, name string) string {
	sc := bufio.NewScanner(bytes.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
