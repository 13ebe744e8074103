package fsys

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// UnmountFUSE unmounts the FUSE filesystem on dir as Unmount does: a busy
// one is a *BusyError unless lazy, one not mounted is ErrNotMounted. Root
// unmounts with umount2(2); any other user through fusermount3 -u (-z when
// lazy), the set-uid helper that unmounts only FUSE mounts the user made.
func UnmountFUSE(dir string, lazy bool) error {
	if os.Geteuid() == 0 {
		return Unmount(dir, lazy)
	}
	prog, err := fusermount()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	cmd := exec.Command(prog, append(args, "--", dir)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		switch {
		case strings.Contains(msg, "Device or resource busy"):
			return Busy(dir, unix.EBUSY)
		case strings.Contains(msg, "not found in"):
			// fusermount3 looks the mount up in /etc/mtab; anything not
			// there is not a FUSE mount of this user's.
			if ok, merr := IsMounted(dir); merr == nil && !ok {
				return fmt.Errorf("unmount %s: %w", dir, ErrNotMounted)
			}
		}
		if msg != "" {
			return fmt.Errorf("unmount %s: %w: %s", dir, err, msg)
		}
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// ErrNoFusermount means fusermount3 (package fuse3), which lets users other
// than root mount and unmount FUSE filesystems, is not installed.
var ErrNoFusermount = errors.New("fusermount3 not found (install fuse3)")

func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoFusermount
}
