package mount

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// mkfsCommands are the supported filesystems: the program, its arguments
// before the label and device, its label option and the longest label it
// takes (bytes). Discard is off everywhere: our devices do not do TRIM, and
// mkfs would otherwise try to discard the whole device first.
var mkfsCommands = map[string]struct {
	prog     string
	args     []string
	labelOpt string
	labelMax int
	pkg      string
}{
	"ext4":  {"mkfs.ext4", []string{"-q", "-F", "-E", "nodiscard"}, "-L", 16, "e2fsprogs"},
	"xfs":   {"mkfs.xfs", []string{"-q", "-f", "-K"}, "-L", 12, "xfsprogs"},
	"btrfs": {"mkfs.btrfs", []string{"-q", "-f", "--nodiscard"}, "-L", 255, "btrfs-progs"},
	// mkfs.fat has no quiet option; its output is only shown on failure.
	"vfat": {"mkfs.vfat", nil, "-n", 11, "dosfstools"},
}

// MkfsTypes lists the filesystem types Mkfs can make.
func MkfsTypes() []string { return []string{"ext4", "xfs", "btrfs", "vfat"} }

// Mkfs makes a new filesystem of type fstype (see MkfsTypes) on the block
// device dev, overwriting whatever is there, with the given label (empty for
// none). It runs the system's mkfs.<type>; its output appears only in an
// error.
func Mkfs(dev, fstype, label string) error {
	c, ok := mkfsCommands[fstype]
	if !ok {
		return fmt.Errorf("mkfs: unsupported filesystem type %q (supported: %s)", fstype, strings.Join(MkfsTypes(), ", "))
	}
	if len(label) > c.labelMax {
		return fmt.Errorf("mkfs: label %q is longer than the %d bytes %s allows", label, c.labelMax, fstype)
	}
	if strings.ContainsAny(label, "\x00\n") {
		return fmt.Errorf("mkfs: label %q has a control character", label)
	}
	prog, err := exec.LookPath(c.prog)
	if err != nil {
		return fmt.Errorf("mkfs: %s not found (install %s): %w", c.prog, c.pkg, err)
	}
	args := append([]string{}, c.args...)
	if label != "" {
		args = append(args, c.labelOpt, label)
	}
	args = append(args, "--", dev)
	cmd := exec.Command(prog, args...)
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
