package loopdev

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cryptvol/cryptvol/mount/fsys"
)

// BackedBy lists the loop devices (such as /dev/loop3) whose
// backing file is file, to clean up after a process that was killed. The
// kernel names a backing file by the path it had when attached; a file
// deleted since carries a " (deleted)" suffix and is still matched.
// Look up a FUSE file's loop devices before unmounting its FUSE mount:
// after a lazy unmount the kernel no longer gives the full path.
func BackedBy(file string) ([]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	want := []string{abs}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		want = append(want, filepath.Join(dir, filepath.Base(abs)))
	}
	all, err := fsys.LoopBackings()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range all {
		b := strings.TrimSuffix(a.Backing, " (deleted)")
		for _, w := range want {
			if b == w {
				out = append(out, a.Dev)
				break
			}
		}
	}
	return out, nil
}
