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
	return mkfs(c, dev, label, c.deviceArgs)
}

// ImageOptions say what mkfs would learn from a block device that a regular
// file does not tell it, for MkfsImage.
type ImageOptions struct {
	// SectorSize is the vault's sector size (512 or 4096): the filesystem's
	// blocks and sectors must be at least that large, or a kernel that
	// mounts it later from a loop or NBD device of that block size refuses.
	SectorSize int
	// UID and GID own the root directory where the filesystem has owners
	// and mkfs can set them (ext4); -1 leaves it root's.
	UID, GID int
}

// MkfsImage makes a new filesystem of type fstype in the regular file path
// (the fuse path's FUSE file: no root needed), as Mkfs does on a device.
func MkfsImage(path, fstype string, o ImageOptions) error {
	c, err := Lookup(fstype)
	if err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	if o.SectorSize != 512 && o.SectorSize != 4096 {
		return fmt.Errorf("mkfs: sector size %d is not 512 or 4096", o.SectorSize)
	}
	return mkfs(c, path, "", c.imageArgs(o.SectorSize, o.UID, o.GID))
}

func mkfs(c Filesystem, dev, label string, extra []string) error {
	fstype := c.Name
	if len(label) > c.labelMax {
		return fmt.Errorf("mkfs: label %q is longer than the %d bytes %s allows", label, c.labelMax, fstype)
	}
	if strings.ContainsAny(label, "\x00\n") {
		return fmt.Errorf("mkfs: label %q has a control character", label)
	}
	prog, err := LookPath(c.mkfs)
	if err != nil {
		return fmt.Errorf("mkfs: %s not found (install %s): %w", c.mkfs, c.Package, err)
	}
	args := append([]string{}, c.mkfsArgs...)
	args = append(args, extra...)
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
