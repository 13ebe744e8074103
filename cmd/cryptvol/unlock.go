package main

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/tcrypt"
)

// unlock asks for the passphrase of path and unlocks it, tolerating a vault
// file the user may only read when readOnlyOK (then nothing is repaired).
// Repair notices become warnings. ctx (the command's: Ctrl-C cancels it)
// stops the key derivation, and --unlock-budget bounds it.
func (u *ui) unlock(ctx context.Context, path string, pf *secretFlags, slots []int, readOnlyOK bool) (*container.Vault, error) {
	access := accessWrite
	if readOnlyOK {
		access = accessAny
	}
	return u.unlockAs(ctx, nil, path, pf, slots, access, nil)
}

// access is how a command opens the container file.
type access int

const (
	accessWrite access = iota // read-write
	accessAny                 // read-write, or read-only if the user may only read it
	accessRead                // read-only: nothing is repaired or changed
)

// unlockAs is unlock for a container of the format ff names (nil: found by
// its header): for VeraCrypt and TrueCrypt volumes the passphrase (and the
// hidden volume's, to protect it) is asked without looking at the file
// first, since nothing in it can be read without one. ctx cancels a trial
// decryption in progress (Ctrl-C).
func (u *ui) unlockAs(ctx context.Context, c *cobra.Command, path string, pf *secretFlags, slots []int, acc access, ff *formatFlags) (*container.Vault, error) {
	opts, err := u.unlockOptions(ctx, c, path, pf, ff)
	if err != nil {
		return nil, err
	}
	if opts.TCrypt.System {
		acc = accessRead // system encryption opens read-only
	}
	pf.typ = opts.Type
	if !isTCrypt(opts.Type) {
		if _, err := pf.learn(path); err != nil { // a damaged vault is reported before asking
			return nil, err
		}
	} else if pf.header != "" {
		return nil, &usageError{"--header is for LUKS volumes"}
	}
	pass, err := u.secret(pf, path)
	if err != nil {
		return nil, err
	}
	defer wipeSecret(pass)
	if ff != nil {
		protect, err := u.protectSecret(ff, pf, path)
		if err != nil {
			return nil, err
		}
		if protect != nil {
			defer wipeSecret(*protect)
			opts.TCrypt.ProtectHidden = protect
		}
	}
	opts.Slots = slots
	opts.ReadOnly = acc == accessRead
	v, err := container.Unlock(path, pass, opts)
	if acc == accessAny && errors.Is(err, os.ErrPermission) {
		opts.ReadOnly = true
		v, err = container.Unlock(path, pass, opts)
	}
	if err != nil && isTCrypt(opts.Type) {
		err = tcryptHint(err, opts)
	}
	return v, err
}

// tcryptHint gives a failed VeraCrypt or TrueCrypt unlock the next step.
func tcryptHint(err error, opts *container.UnlockOptions) error {
	var he *tcrypt.HeaderError
	var le *tcrypt.LegacyError
	switch {
	case errors.Is(err, container.ErrWrongPassphrase):
		hint := "check the passphrase and every keyfile (any order; a directory stands for the files in it)"
		if opts.Type == container.TypeVeraCrypt && opts.TCrypt.PIM == 0 {
			hint += "; a volume made with a PIM needs --pim N"
		}
		if !opts.TCrypt.BackupHeader && !opts.TCrypt.System {
			hint += "; if the header may be damaged, try --backup-header"
		}
		if opts.Type == container.TypeVeraCrypt && opts.TCrypt.PRF == "" {
			hint += "; a volume of VeraCrypt 1.25 or older with RIPEMD-160 needs --prf ripemd160"
		}
		return withHint(err, hint)
	case errors.Is(err, kdf.ErrBudget):
		return withHint(err, "trying these key derivations takes more work than the unlock budget allows: name the PRF with --prf, or, for a volume you trust, allow more with --unlock-budget SIZE")
	case errors.As(err, &le):
		return withHint(err, "cryptsetup tcryptOpen maps TrueCrypt's LRW volumes and its CBC volumes of one cipher, and TrueCrypt 7.1a mounts them all (VeraCrypt 1.26 does not); copy the data out with one of them, e.g. into an image for `cryptvol create --from`")
	case errors.As(err, &he) && he.Field == "version" && opts.Type == container.TypeVeraCrypt:
		return withHint(err, "a TrueCrypt 5 volume opens with --type truecrypt")
	case errors.Is(err, container.ErrDamaged):
		return withHint(err, "VeraCrypt would refuse this header too; see VERACRYPT.md for what cryptvol opens")
	}
	return err
}

// unlockOptions resolves the format flags into options for container.Unlock.
func (u *ui) unlockOptions(ctx context.Context, c *cobra.Command, path string, pf *secretFlags, ff *formatFlags) (*container.UnlockOptions, error) {
	budget, err := pf.unlockBudget()
	if err != nil {
		return nil, err
	}
	opts := &container.UnlockOptions{Context: ctx, Budget: budget, Header: pf.header, Warn: func(m string) { u.warnf("%s: %s", path, m) }}
	if ff == nil {
		return opts, nil
	}
	typ, to, err := ff.resolve(c)
	if err != nil {
		return nil, err
	}
	opts.Type, opts.TCrypt = typ, to
	return opts, nil
}

// slotList turns an optional --slot flag into the slots to try.
func slotList(slot int) []int {
	if slot < 0 {
		return nil
	}
	return []int{slot}
}
