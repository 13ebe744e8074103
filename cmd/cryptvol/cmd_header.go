package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/header"
)

func newHeaderCommand(u *ui) *cobra.Command {
	c := &cobra.Command{
		Use:   "header",
		Short: "Back up, restore or repair a vault's header",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newHeaderBackupCommand(u), newHeaderRestoreCommand(u), newHeaderRepairCommand(u))
	return c
}

func newHeaderBackupCommand(u *ui) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "backup FILE OUT",
		Short: "Save the header (keyslots) to a file",
		Long: `Write the vault's 4096-byte header to OUT (a new file, mode 0600; with --force
an existing OUT is replaced, never written through; OUT may not be the vault
itself). If both header copies in the vault are ever damaged, 'cryptvol header
restore' brings the vault back.

For a LUKS volume OUT is what 'cryptsetup luksHeaderBackup' writes (the header
and keyslot areas, 16 MiB by default): either tool restores the other's.

The backup holds the keyslots as they are now: every current passphrase opens
the vault with it, even after you change or remove that passphrase in the vault.
Keep it as safe as the vault itself.`,
		Args: exactArgs(2, "a vault file and an output file"),
		RunE: func(c *cobra.Command, args []string) error {
			raw, err := container.BackupHeader(args[0])
			if err != nil {
				return err
			}
			o, err := createOutput(args[1], force, args[0])
			if err != nil {
				return err
			}
			if _, err = o.File().Write(raw); err == nil {
				err = o.Commit()
			}
			if err != nil {
				o.Abort()
				return err
			}
			u.printf("saved the header of %s to %s\n", args[0], args[1])
			u.warnf("%s holds the keyslots: every passphrase valid now opens the vault with it, even after you change it; keep it safe", args[1])
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "overwrite OUT if it exists")
	return c
}

func newHeaderRestoreCommand(u *ui) *cobra.Command {
	var (
		yes  bool
		slot int
		pf   secretFlags
	)
	c := &cobra.Command{
		Use:   "restore FILE BACKUP",
		Short: "Write a header backup back into a vault",
		Long: `Replace both header copies of FILE with the header saved in BACKUP. You need a
passphrase valid for the backup. The backup must belong to this vault (same
uuid) and match its size. Passphrases changed since the backup was taken stop
working; those of the backup work again. Asks for confirmation unless --yes.`,
		Args: exactArgs(2, "a vault file and a header backup file"),
		RunE: func(c *cobra.Command, args []string) error {
			backup, err := readHeaderBackup(args[1])
			if err != nil {
				return err
			}
			if !yes {
				ok, err := u.askConfirm(fmt.Sprintf("This overwrites both header copies of %s with %s: passphrases changed since that backup stop working.", args[0], args[1]))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("not confirmed: nothing was changed")
				}
			}
			pf.luks = container.IsLUKSBackup(backup)
			pass, err := u.secret(&pf, "the header backup "+args[1])
			if err != nil {
				return err
			}
			defer wipeSecret(pass)
			budget, err := pf.unlockBudget()
			if err != nil {
				return err
			}
			if err := container.RestoreHeader(args[0], backup, pass, &container.UnlockOptions{Slots: slotList(slot), Header: pf.header, Context: c.Context(), Budget: budget}); err != nil {
				return err
			}
			u.printf("restored the header of %s from %s\n", args[0], args[1])
			return nil
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	c.Flags().IntVar(&slot, "slot", -1, "try only this keyslot of the backup")
	pf.register(c, false)
	pf.registerBudget(c)
	return c
}

// readHeaderBackup reads a header backup file, refusing anything that is not
// one header block or a LUKS header backup (without reading a huge file into
// memory).
func readHeaderBackup(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, header.Size+1))
	if err != nil {
		return nil, err
	}
	if container.IsLUKSBackup(b) {
		rest, err := io.ReadAll(io.LimitReader(f, container.MaxLUKSBackup))
		if err != nil {
			return nil, err
		}
		return append(b, rest...), nil
	}
	if len(b) != header.Size {
		return nil, fmt.Errorf("%s: %w", path, &damagedBackup{len(b)})
	}
	return b, nil
}

type damagedBackup struct{ n int }

func (e *damagedBackup) Error() string {
	if e.n > header.Size {
		return fmt.Sprintf("not a header backup: longer than %d bytes", header.Size)
	}
	return fmt.Sprintf("not a header backup: %d bytes, want %d", e.n, header.Size)
}
func (e *damagedBackup) Is(target error) bool { return target == container.ErrDamaged }

func newHeaderRepairCommand(u *ui) *cobra.Command {
	var pf secretFlags
	c := &cobra.Command{
		Use:   "repair FILE",
		Short: "Repair a damaged or stale header copy from the other one",
		Long: `Check both header copies and rewrite a damaged, missing or older one from the
good one, after a passphrase has verified the good one's authenticity. Opening a
vault does the same on the way; this does only that. A LUKS2 volume's copies
are repaired only by this command (as 'cryptsetup repair' does).`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			var notes []string
			budget, err := pf.unlockBudget()
			if err != nil {
				return err
			}
			if _, err := pf.learn(args[0]); err != nil {
				return err
			}
			pass, err := u.secret(&pf, args[0])
			if err != nil {
				return err
			}
			defer wipeSecret(pass)
			v, err := container.Unlock(args[0], pass, &container.UnlockOptions{Header: pf.header, Warn: func(m string) { notes = append(notes, m) },
				Context: c.Context(), Budget: budget})
			if err != nil {
				return err
			}
			defer v.Close()
			if pf.luks {
				notes = nil // a LUKS2 copy unlocking reported is repaired now, and said again
			}
			if err := v.Repair(); err != nil {
				return err
			}
			if len(notes) == 0 {
				u.printf("both header copies of %s are intact: nothing to repair\n", args[0])
				return nil
			}
			for _, n := range notes {
				u.printf("%s: %s\n", args[0], strings.TrimSpace(n))
			}
			return nil
		},
	}
	pf.register(c, false)
	pf.registerBudget(c)
	return c
}
