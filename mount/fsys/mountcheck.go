package fsys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Before it writes or checks a device, btrfs-progs (mkfs.btrfs, btrfs check)
// makes sure the device is not mounted by walking the mount table and
// stat()ing every mount's source, and the backing file of every mounted loop
// device. Any error but ENOENT stops it ("cannot check mount status of
// /dev/loop1: Permission denied"), and such mounts are ordinary: an
// unprivileged user's FUSE mount refuses even root (fuse2fs names its mount
// after an image inside one), and a mount's source may be any string. So a
// vault could not be made with btrfs while, say, another user had a vault
// open without root.
//
// unstatableMounts lists the mount points whose source, or loop backing
// file, this process cannot stat for a reason other than its absence.
// Hiding them from the tool is safe: a device whose path cannot be looked up
// is not the device being made or checked, which is cryptvol's own and
// claimed (CheckUnclaimed) before any filesystem is put on it.
func unstatableMounts() ([]string, error) {
	ms, err := Mounts()
	if err != nil {
		return nil, err
	}
	var hide []string
	for _, m := range ms {
		if !strings.HasPrefix(m.Source, "/") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(m.Source, &st); err != nil {
			if err != unix.ENOENT {
				hide = append(hide, m.MountPoint)
			}
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/loop/backing_file", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		if err != nil {
			continue // not a loop device, or detached meanwhile
		}
		backing := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), " (deleted)")
		if err := unix.Stat(backing, &st); err != nil && err != unix.ENOENT {
			hide = append(hide, m.MountPoint)
		}
	}
	return hide, nil
}

// hideUnstatable is the shell script that runs a command in a mount
// namespace of its own without the mounts given: "$1" is their count, then
// the mount points, then the command. A mount that will not go (one below
// another already gone) is left; the command says what it thinks of it.
const hideUnstatable = `n=$1; shift
while [ "$n" -gt 0 ]; do umount -l -- "$1" 2>/dev/null; shift; n=$((n-1)); done
exec "$@"`

// toolCommand is the command that runs prog with args for the catalogue
// entry f: as it is, or for a tool that stats every mount's source
// (statsMounts), in a private mount namespace without the mounts it cannot
// stat, when there are any and this process may make one (root).
func (f Filesystem) toolCommand(ctx context.Context, prog string, args ...string) (*exec.Cmd, error) {
	if !f.statsMounts || os.Geteuid() != 0 {
		return exec.CommandContext(ctx, prog, args...), nil
	}
	hide, err := unstatableMounts()
	if err != nil || len(hide) == 0 {
		return exec.CommandContext(ctx, prog, args...), nil
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, errors.New("sh not found")
	}
	shArgs := append([]string{"-c", hideUnstatable, "sh", strconv.Itoa(len(hide))}, hide...)
	cmd := exec.CommandContext(ctx, sh, append(append(shArgs, prog), args...)...)
	// CLONE_NEWNS: Go also makes the new namespace's mounts private, so the
	// unmounts inside it reach nothing outside.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd, nil
}
