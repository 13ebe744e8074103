package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/tcrypt"
)

func newPasswdCommand(u *ui) *cobra.Command {
	var (
		slot   int
		kf     kdfFlags
		pf     secretFlags
		ff     formatFlags
		newPIM int
		newPRF string
	)
	c := &cobra.Command{
		Use:   "passwd FILE",
		Short: "Change a passphrase",
		Long: `Change the passphrase of the keyslot that the current passphrase opens (or of
--slot N, whose passphrase you then give). The keyslot keeps its number.

The change is crash-safe: the new passphrase is first written into a free
keyslot, then moved into place, with both header copies written one after the
other; an interruption leaves a vault that opens with the old or the new
passphrase. The data is not rewritten: the master key stays the same.

A VeraCrypt or TrueCrypt volume (--type veracrypt or truecrypt) has one
passphrase per volume (a hidden volume has its own): the header it opens and
its backup are encrypted again under the new passphrase or keyfiles, with
--new-prf (default: the current PRF) and --new-pim (default: none). The
primary header is written first, then the backup; an interruption in between
leaves the new passphrase in the primary header and the old one in the backup
(--backup-header). With --type veracrypt a TrueCrypt 6 or 7 volume becomes a
VeraCrypt volume, as VeraCrypt's "convert TrueCrypt volume" makes it.`,
		Example: `  cryptvol passwd vault.cv
  cryptvol passwd --type veracrypt volume.hc --new-prf sha512 --new-pim 0`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := pf.check(); err != nil {
				return err
			}
			typ, _, err := ff.resolve(c)
			if err != nil {
				return err
			}
			if isTCrypt(typ) {
				return tcryptPasswd(c, u, args[0], &pf, &ff, typ, newPIM, newPRF)
			}
			for _, name := range []string{"new-pim", "new-prf"} {
				if c.Flags().Changed(name) {
					return &usageError{fmt.Sprintf("--%s is for VeraCrypt and TrueCrypt volumes: add --type veracrypt (or truecrypt)", name)}
				}
			}
			params, err := kf.params(c)
			if err != nil {
				return err
			}
			v, err := u.unlock(c.Context(), args[0], &pf, slotList(slot), false)
			if err != nil {
				return err
			}
			defer v.Close()
			pass, err := u.newSecretFor(&pf, "Enter the new passphrase for "+args[0])
			if err != nil {
				return err
			}
			defer wipeSecret(pass)
			if err := v.ChangePassphrase(v.Slot(), pass, params); err != nil {
				return err
			}
			u.printf("changed the passphrase of keyslot %d\n", v.Slot())
			u.warnWeak(args[0], v.Slot(), params)
			return nil
		},
	}
	c.Flags().IntVar(&slot, "slot", -1, "change this keyslot (its current passphrase is asked)")
	c.Flags().IntVar(&newPIM, "new-pim", 0, "VeraCrypt: the PIM of the new passphrase (0: none)")
	c.Flags().StringVar(&newPRF, "new-prf", "", "VeraCrypt, TrueCrypt: the PRF of the new header key (default: the current one)")
	pf.register(c, true)
	pf.registerBudget(c)
	kf.register(c)
	ff.register(c, false)
	return c
}

// tcryptPasswd re-keys the header a VeraCrypt or TrueCrypt volume's
// passphrase opens.
func tcryptPasswd(c *cobra.Command, u *ui, path string, pf *secretFlags, ff *formatFlags, typ container.Type, newPIM int, newPRF string) error {
	for _, name := range []string{"slot", "kdf-time", "kdf-memory", "kdf-iterations", "kdf-threads"} {
		if c.Flags().Changed(name) {
			return &usageError{fmt.Sprintf("--%s is for cryptvol vaults; a VeraCrypt volume's key derivation is --new-prf and --new-pim", name)}
		}
	}
	if ff.system {
		return &usageError{"--system: cryptvol does not change the passphrase of system encryption (VeraCrypt does, from the running system)"}
	}
	prf, err := checkPRF("--new-prf", newPRF)
	if err != nil {
		return err
	}
	if newPIM < 0 || newPIM > tcrypt.MaxPIM {
		return &usageError{fmt.Sprintf("--new-pim %d: must be 0 to %d", newPIM, tcrypt.MaxPIM)}
	}
	if typ == container.TypeTrueCrypt && newPIM != 0 {
		return &usageError{"TrueCrypt volumes have no PIM: drop --new-pim, or use --type veracrypt to make it a VeraCrypt volume"}
	}
	v, err := u.unlockAs(c.Context(), c, path, pf, nil, accessWrite, ff)
	if err != nil {
		return err
	}
	defer v.Close()
	pass, err := u.newSecret(pf, pf.newFile, pf.newKeyfiles, "Enter the new passphrase for "+path)
	if err != nil {
		return err
	}
	defer wipeSecret(pass)
	if err := v.ChangeHeaderKey(c.Context(), pass, container.HeaderKDF{PRF: prf, PIM: newPIM}); err != nil {
		return err
	}
	ti, _ := v.TCryptInfo()
	u.printf("changed the passphrase of the %s volume's header and its backup (%s)\n", ti.Header, describeTCryptKDF(ti))
	return nil
}
