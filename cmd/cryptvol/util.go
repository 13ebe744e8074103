package main

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writeFileDurably writes b to a file at path (mode 0600 when it is created;
// flag adds O_EXCL or O_TRUNC) and makes it durable: the file and then its
// directory are fsynced, so that the file and its name survive a crash.
func writeFileDurably(path string, b []byte, flag int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return err // EINVAL, ENOTSUP: a filesystem that cannot sync directories
	}
	return nil
}
