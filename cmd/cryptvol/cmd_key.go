package main

import (
	"github.com/spf13/cobra"
)

func newKeyCommand(u *ui) *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Add or remove passphrases (keyslots)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newKeyAddCommand(u), newKeyRemoveCommand(u))
	return c
}

func newKeyAddCommand(u *ui) *cobra.Command {
	var (
		slot int
		kf   kdfFlags
		pf   secretFlags
	)
	c := &cobra.Command{
		Use:   "add FILE",
		Short: "Add a passphrase in a free keyslot",
		Long: `Add a passphrase: an existing passphrase unlocks the vault, then the new one is
wrapped into the lowest free keyslot (or --slot N). A vault has 8 keyslots.`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := pf.check(); err != nil {
				return err
			}
			params, err := kf.params(c)
			if err != nil {
				return err
			}
			v, err := u.unlock(c.Context(), args[0], &pf, nil, false)
			if err != nil {
				return err
			}
			defer v.Close()
			pass, err := u.newSecretFor(&pf, "Enter the new passphrase for "+args[0])
			if err != nil {
				return err
			}
			defer wipeSecret(pass)
			n, err := v.AddPassphrase(pass, params, slot)
			if err != nil {
				return err
			}
			u.printf("added a passphrase in keyslot %d\n", n)
			u.warnWeak(args[0], n, params)
			return nil
		},
	}
	c.Flags().IntVar(&slot, "slot", -1, "use this free keyslot (default: the lowest free one)")
	pf.register(c, true)
	pf.registerBudget(c)
	kf.register(c)
	return c
}

func newKeyRemoveCommand(u *ui) *cobra.Command {
	var (
		slot int
		pf   secretFlags
	)
	c := &cobra.Command{
		Use:   "remove FILE --slot N",
		Short: "Remove a keyslot (its passphrase stops working)",
		Long: `Remove keyslot N: its 256 bytes are zeroed in both header copies and its
passphrase no longer opens the vault. Any passphrase of the vault authorises it.
The last keyslot cannot be removed (the vault could never be opened again).

A header backup taken earlier still holds the removed keyslot.`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("slot") {
				return &usageError{"--slot is required (see `cryptvol info FILE` for the active keyslots)"}
			}
			v, err := u.unlock(c.Context(), args[0], &pf, nil, false)
			if err != nil {
				return err
			}
			defer v.Close()
			if err := v.RemoveSlot(slot); err != nil {
				return err
			}
			u.printf("removed keyslot %d\n", slot)
			return nil
		},
	}
	c.Flags().IntVar(&slot, "slot", -1, "the keyslot to remove (required)")
	pf.register(c, false)
	pf.registerBudget(c)
	return c
}
