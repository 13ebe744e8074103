package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
)

func newResizeCommand(u *ui) *cobra.Command {
	var (
		size, fill string
		pf         secretFlags
	)
	c := &cobra.Command{
		Use:   "resize FILE --size SIZE",
		Short: "Grow a closed vault",
		Long: `Grow a closed vault to SIZE usable bytes (K, M, G, T: powers of 1024). The new
space is sparse unless --fill random. The header moves to the new end of the
file, crash-safely: an interruption leaves the old size or the new one.

Only the vault grows: the filesystem inside keeps its size until you grow it
with its own tool after opening the vault (the command prints how). Shrinking is
not supported. An open vault is refused: close it first.`,
		Example: `  cryptvol resize vault.cv --size 20G
  cryptvol open vault.cv /mnt/secret && resize2fs /dev/loop0`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if size == "" {
				return &usageError{"--size is required"}
			}
			n, err := parseSize(size)
			if err != nil {
				return &usageError{"--size: " + err.Error()}
			}
			f, err := parseFill(fill)
			if err != nil {
				return err
			}
			info, err := pf.learn(args[0])
			if err != nil {
				return err
			}
			old := info.Geometry.Size
			if n < old {
				return withHint(container.ErrShrink, "to make a vault smaller, create a smaller one and copy the files over")
			}
			if n%int64(info.Geometry.SectorSize) != 0 {
				return &usageError{fmt.Sprintf("--size %s: must be a multiple of the sector size (%d)", size, info.Geometry.SectorSize)}
			}
			if open, _ := container.InUse(args[0]); open {
				return withHint(fmt.Errorf("%s is open: it cannot grow while in use", args[0]), "close it first: cryptvol close "+args[0])
			}
			v, err := u.unlock(c.Context(), args[0], &pf, nil, false)
			if err != nil {
				return err
			}
			defer v.Close()
			progress, finish := u.progress("filling the new space")
			err = v.Grow(c.Context(), n, f, progress)
			finish()
			if errors.Is(err, container.ErrInUse) {
				err = withHint(err, "close it first: cryptvol close "+args[0])
			}
			if err != nil {
				return err
			}
			u.printf("grew %s from %s to %s\n", args[0], humanBytes(old), humanBytes(n))
			u.printf("the filesystem inside is still %s: open the vault and grow it with its tool:\n", humanBytes(old))
			u.printf("  ext4:  resize2fs DEVICE            (mounted, or after `open --no-mount` and e2fsck -f DEVICE)\n")
			u.printf("  xfs:   xfs_growfs MOUNTPOINT\n")
			u.printf("  btrfs: btrfs filesystem resize max MOUNTPOINT\n")
			u.printf("  vfat:  fatresize -s max DEVICE     (with the vault open but not mounted: --no-mount)\n")
			return nil
		},
	}
	c.Flags().StringVar(&size, "size", "", "the new usable size, e.g. 20G (required)")
	c.Flags().StringVar(&fill, "fill", "sparse", "the new space: sparse, or random (written with encrypted random data)")
	pf.register(c, false)
	pf.registerBudget(c)
	return c
}

// parseFill parses --fill.
func parseFill(fill string) (container.Fill, error) {
	switch fill {
	case "sparse":
		return container.FillSparse, nil
	case "random":
		return container.FillRandom, nil
	}
	return 0, &usageError{fmt.Sprintf("--fill %q: must be sparse or random", fill)}
}
