package fsys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Mkfs makes a new filesystem of type fstype (see Names) on the block device
// dev, overwriting whatever is there, with the given label (empty for none).
// It runs the system's mkfs.<type>; its output appears only in an error.
func Mkfs(dev, fstype, label string) error {
	c, err := Lookup(fstype)
	if err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	if len(label) > c.labelMax {
		return fmt.Errorf("mkfs: label %q is longer than the %d bytes %s allows", label, c.labelMax, fstype)
	}
	if strings.ContainsAny(label, "\x00\n") {
		return fmt.Errorf("mkfs: label %q has a control character", label)
	}
	prog, err := exec.LookPath(c.mkfs)
	if err != nil {
		return fmt.Errorf("mkfs: %s not found (install %s): %w", c.mkfs, c.Package, err)
	}
	args := append([]string{}, c.mkfsArgs...)
	if label != "" {
		args = append(args, c.labelOpt, label)
	}
	args = append(args, "--", dev)
	cmd, err := c.toolCommand(context.Background(), prog, args...)
	if err != nil {
		return fmt.Errorf("mkfs %s on %s: %w", fstype, dev, err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return fmt.Errorf("mkfs %s on %s: %w: %s", fstype, dev, err, msg)
		}
		return fmt.Errorf("mkfs %s on %s: %w", fstype, dev, err)
	}
	return nil
}
