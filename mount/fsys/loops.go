package fsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LoopBacking is an attached loop device as /sys/block shows it.
type LoopBacking struct {
	Dev     string // /dev/loopN
	Backing string // the backing file's path as the kernel names it
}

// LoopBackingFile returns the backing file of /dev/loopN, or "" if the
// device is not attached (then /sys/block/loopN/loop does not exist).
func LoopBackingFile(n int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/loop/backing_file", n))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("loop: %w", err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// LoopBackings lists every attached loop device and its backing file.
func LoopBackings() ([]LoopBacking, error) {
	dirs, err := filepath.Glob("/sys/block/loop*/loop")
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	var out []LoopBacking
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		n, err := strconv.Atoi(strings.TrimPrefix(name, "loop"))
		if err != nil {
			continue
		}
		b, err := LoopBackingFile(n)
		if err != nil || b == "" {
			continue // detached meanwhile
		}
		out = append(out, LoopBacking{Dev: "/dev/" + name, Backing: b})
	}
	return out, nil
}
