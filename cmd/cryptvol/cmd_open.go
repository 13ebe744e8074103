package main

import (
	"github.com/spf13/cobra"
)

func newOpenCommand(u *ui) *cobra.Command {
	var (
		testOnly bool
		slot     int
		pf       passphraseFlags
	)
	c := &cobra.Command{
		Use:   "open FILE --test-passphrase",
		Short: "Open a vault (check a passphrase with --test-passphrase)",
		Long: `With --test-passphrase: ask for the passphrase and exit 0 if it opens a keyslot,
3 if it does not. A damaged header copy is repaired on the way (with a warning).`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			if !testOnly {
				return &usageError{"mounting is not available yet: use --test-passphrase"}
			}
			v, err := u.unlock(args[0], pf.file, slotList(slot), true)
			if err != nil {
				return err
			}
			defer v.Close()
			u.printf("the passphrase opens keyslot %d\n", v.Slot())
			return nil
		},
	}
	c.Flags().BoolVar(&testOnly, "test-passphrase", false, "only check the passphrase: exit 0 if it opens a keyslot, 3 if not")
	c.Flags().IntVar(&slot, "slot", -1, "try only this keyslot")
	c.Flags().StringVar(&pf.file, "passphrase-file", "", "read the passphrase from the first line of this file (- for standard input)")
	return c
}
