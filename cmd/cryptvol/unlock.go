package main

import (
	"context"
	"errors"
	"os"

	"github.com/cryptvol/cryptvol/container"
)

// unlock asks for the passphrase of path and unlocks it, tolerating a vault
// file the user may only read when readOnlyOK (then nothing is repaired).
// Repair notices become warnings. ctx (the command's: Ctrl-C cancels it)
// stops the key derivation, and --unlock-budget bounds it.
func (u *ui) unlock(ctx context.Context, path string, pf *secretFlags, slots []int, readOnlyOK bool) (*container.Vault, error) {
	budget, err := pf.unlockBudget()
	if err != nil {
		return nil, err
	}
	if _, err := pf.learn(path); err != nil { // a damaged vault is reported before asking
		return nil, err
	}
	pass, err := u.secret(pf, path)
	if err != nil {
		return nil, err
	}
	defer wipeSecret(pass)
	opts := &container.UnlockOptions{Slots: slots, Header: pf.header, Warn: func(m string) { u.warnf("%s: %s", path, m) },
		Context: ctx, Budget: budget}
	v, err := container.Unlock(path, pass, opts)
	if readOnlyOK && errors.Is(err, os.ErrPermission) {
		opts.ReadOnly = true
		v, err = container.Unlock(path, pass, opts)
	}
	return v, err
}

// slotList turns an optional --slot flag into the slots to try.
func slotList(slot int) []int {
	if slot < 0 {
		return nil
	}
	return []int{slot}
}
