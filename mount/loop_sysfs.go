package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// loopAttachment is an attached loop device as /sys/block shows it.
type loopAttachment struct {
	dev     string // /dev/loopN
	backing string // the backing file's path as the kernel names it
}

// loopBackingFile returns the backing file of /dev/loopN, or "" if the
// device is not attached (then /sys/block/loopN/loop does not exist).
func loopBackingFile(n int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/backing_file", n))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("loop: %w", err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// loopBackingFiles lists every attached loop device.
func loopBackingFiles() ([]loopAttachment, error) {
	dirs, err := filepath.Glob("/sys/block/loop*/loop")
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	var out []loopAttachment
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		n, err := strconv.Atoi(strings.TrimPrefix(name, "loop"))
		if err != nil {
			continue
		}
		b, err := loopBackingFile(n)
		if err != nil || b == "" {
			continue // detached meanwhile
		}
		out = append(out, loopAttachment{dev: "/dev/" + name, backing: b})
	}
	return out, nil
}

// LoopDevicesBackedBy lists the loop devices (such as /dev/loop3) whose
// backing file is file, to clean up after a process that was killed. The
// kernel names a backing file by the path it had when attached; a file
// deleted since carries a " (deleted)" suffix and is still matched.
// Look up a FUSE file's loop devices before unmounting its FUSE mount:
// after a lazy unmount the kernel no longer gives the full path.
func LoopDevicesBackedBy(file string) ([]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	want := []string{abs}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		want = append(want, filepath.Join(dir, filepath.Base(abs)))
	}
	all, err := loopBackingFiles()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		b := strings.TrimSuffix(a.backing, " (deleted)")
		for _, w := range want {
			if b == w {
				out = append(out, a.dev)
				break
			}
		}
	}
	return out, nil
}
