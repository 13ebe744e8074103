package main

import (
	"github.com/spf13/cobra"
)

func newPasswdCommand(u *ui) *cobra.Command {
	var (
		slot int
		kf   kdfFlags
		pf   secretFlags
	)
	c := &cobra.Command{
		Use:   "passwd FILE",
		Short: "Change a passphrase",
		Long: `Change the passphrase of the keyslot that the current passphrase opens (or of
--slot N, whose passphrase you then give). The keyslot keeps its number.

The change is crash-safe: the new passphrase is first written into a free
keyslot, then moved into place, with both header copies written one after the
other; an interruption leaves a vault that opens with the old or the new
passphrase. The data is not rewritten: the master key stays the same.`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := pf.check(); err != nil {
				return err
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
	pf.register(c, true)
	pf.registerBudget(c)
	kf.register(c)
	return c
}
