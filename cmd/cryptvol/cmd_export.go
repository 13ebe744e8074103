package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cryptvol/cryptvol/container"
)

func newExportCommand(u *ui) *cobra.Command {
	var (
		force bool
		pf    secretFlags
		ff    formatFlags
	)
	c := &cobra.Command{
		Use:   "export FILE OUT",
		Short: "Write a vault's decrypted contents to a file (plaintext!)",
		Long: `Decrypt the whole vault into OUT, a raw disk image (or - for standard output),
the reverse of 'cryptvol create --from'. OUT is PLAINTEXT: anyone who reads it
reads everything in the vault. It is created with mode 0600 after the passphrase
is given (never through a symbolic link, never into a file that appeared
meanwhile), and left sparse where the vault's contents are zero. With --force an
existing OUT is replaced by a new file (a device is written in place). OUT may
not be the vault itself. The vault must not be open read-write.

A VeraCrypt or TrueCrypt volume (--type veracrypt or truecrypt) exports the
volume its passphrase opens: the outer or the hidden one, or with --system the
system partition of a disk image. 'cryptvol create --from' makes a cryptvol
vault of the result.`,
		Example: `  cryptvol export vault.cv disk.img
  cryptvol export vault.cv - | ssh backup 'cat > disk.img'
  cryptvol export --type veracrypt volume.hc disk.img`,
		Args: exactArgs(2, "a vault file and an output file (or -)"),
		RunE: func(c *cobra.Command, args []string) error {
			out := args[1]
			if out == "-" {
				if f, ok := u.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return withHint(errors.New("refusing to write a disk image to the terminal"), "redirect standard output, or give a file name")
				}
			} else {
				// Checked again when OUT is created, after the prompt:
				// here only to fail before asking.
				if err := notTheVault(out, args[0]); err != nil {
					return err
				}
				if !force && fileExists(out) {
					return withHint(fmt.Errorf("%s: %w", out, container.ErrExists), "pass --force to overwrite it")
				}
			}
			v, err := u.unlockAs(c.Context(), c, args[0], &pf, nil, accessRead, &ff)
			if err != nil {
				return err
			}
			vol, err := v.Open(&container.OpenOptions{ReadOnly: true, Header: pf.header})
			v.Close()
			if errors.Is(err, container.ErrInUse) {
				err = withHint(err, "close it first: cryptvol close "+args[0])
			}
			if err != nil {
				return err
			}
			defer vol.Close()
			var w io.Writer = u.stdout
			var o *output
			if out != "-" {
				if o, err = createOutput(out, force, args[0]); err != nil {
					return err
				}
				w = o.File()
			}
			u.warnf("%s holds the contents of %s UNENCRYPTED: protect it, and delete it when done", out, args[0])
			progress, finish := u.progress("exporting")
			err = vol.Export(c.Context(), w, progress)
			finish()
			if o != nil {
				if err == nil {
					err = o.Commit()
				}
				if err != nil {
					o.Abort()
					return err
				}
				u.printf("exported %s (%s) to %s\n", args[0], humanBytes(vol.Size()), out)
			}
			return err
		},
	}
	c.Flags().BoolVar(&force, "force", false, "overwrite OUT if it exists")
	pf.register(c, false)
	pf.registerBudget(c)
	ff.register(c, false)
	return c
}
