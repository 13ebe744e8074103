package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/container"
)

// output is a file the CLI writes plaintext or keyslots into (export, header
// backup), as root as often as not. It never writes through a file someone
// else made or through a symbolic link, and what it creates has mode 0600:
//
//   - Without force it is created with O_EXCL|O_NOFOLLOW, after the passphrase
//     prompt: a file or link planted at its name meanwhile makes it fail
//     instead of receiving the plaintext (and keeping its own mode).
//   - With force over a regular file or a symbolic link, a new file is written
//     next to it and renamed over the name once complete: the old file, its
//     mode, its owner and its other names never see a byte, and a link is
//     replaced, not followed.
//   - With force over a device (a disk, /dev/null) it is written in place, as
//     asked.
//   - A name that is the vault itself (the same file, by device and inode,
//     whatever the path) is refused: the vault would be destroyed.
type output struct {
	f    *os.File
	path string // the name it ends under
	tmp  string // the name it is written under, if not path
	made bool   // created here (removed if not committed)
}

// createOutput opens path for writing as described above. vault is the
// file being read, which path must not be.
func createOutput(path string, force bool, vault string) (*output, error) {
	if err := notTheVault(path, vault); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return &output{f: f, path: path, made: true}, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if !force {
		return nil, withHint(fmt.Errorf("%s: %w", path, container.ErrExists), "pass --force to overwrite it")
	}
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	switch {
	case st.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0:
		f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return &output{f: f, path: path}, nil
	case st.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	}
	f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cryptvol-tmp-*") // 0600, O_EXCL
	if err != nil {
		return nil, err
	}
	return &output{f: f, path: path, tmp: f.Name(), made: true}, nil
}

// notTheVault refuses an output that is the vault file itself.
func notTheVault(path, vault string) error {
	out, err := os.Stat(path)
	if err != nil {
		return nil // nothing there (or a dangling link, replaced if forced)
	}
	if v, err := os.Stat(vault); err == nil && os.SameFile(out, v) {
		return withHint(fmt.Errorf("%s is the vault %s itself: writing it would destroy the vault", path, vault), "give another output file")
	}
	return nil
}

// File is the open file to write.
func (o *output) File() *os.File { return o.f }

// Commit makes the output durable under its name: the file is synced,
// renamed into place if it was written under another name, and the
// directory synced.
func (o *output) Commit() error {
	if err := o.f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: /dev/null and the like
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	if o.tmp != "" {
		if err := os.Rename(o.tmp, o.path); err != nil {
			return err
		}
		o.tmp = ""
	}
	if !o.made {
		return nil // written in place: no new name
	}
	o.made = false
	return syncDir(filepath.Dir(o.path))
}

// Abort closes the output and removes what was created for it.
func (o *output) Abort() {
	o.f.Close()
	switch {
	case o.tmp != "":
		os.Remove(o.tmp)
	case o.made:
		os.Remove(o.path)
	}
}

// syncDir fsyncs a directory, so that a new name in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return err // EINVAL, ENOTSUP: a filesystem that cannot sync directories
	}
	return nil
}
