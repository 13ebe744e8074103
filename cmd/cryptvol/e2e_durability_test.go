package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// Commands of the durability and disk-full scripts (testdata/e2e).

// fsync-copy SRC DST: copy a file and make it durable: fsync the file and
// its directory, as a careful application does.
func cmdFsyncCopy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fsync-copy SRC DST")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(writeFileDurably(ts.MkAbs(args[1]), b, os.O_TRUNC))
}

// mount-tmpfs DIR SIZE: mount a tmpfs of SIZE bytes on DIR (created); it is
// unmounted when the script ends, whatever happens.
func cmdMountTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mount-tmpfs DIR SIZE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(unix.Mount("cryptvol-test", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+args[1]+",mode=0700"))
	ts.Defer(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// fill-until-error DIR MAX: write files of 1 MiB of random data into DIR,
// each fsynced with its directory, until a write or fsync fails (the disk
// under the vault is full) or MAX files are written (which fails: the error
// never reached the writer). Each file that was made durable is kept in
// $WORK/filled for check-filled; the error is logged and must be EIO,
// ENOSPC or EROFS.
func cmdFillUntilError(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fill-until-error DIR MAX")
	}
	max, err := strconv.Atoi(args[1])
	ts.Check(err)
	keep := ts.MkAbs("filled")
	ts.Check(os.MkdirAll(keep, 0o700))
	for i := range max {
		b := make([]byte, 1<<20)
		rand.Read(b)
		name := fmt.Sprintf("f%04d", i)
		if err := writeFileDurably(filepath.Join(ts.MkAbs(args[0]), name), b, os.O_TRUNC); err != nil {
			var errno syscall.Errno
			if !errors.As(err, &errno) || (errno != syscall.EIO && errno != syscall.ENOSPC && errno != syscall.EROFS) {
				ts.Fatalf("file %d: %v: not the error a full disk should give", i, err)
			}
			ts.Logf("after %d durable files of 1 MiB: %v", i, err)
			return
		}
		ts.Check(os.WriteFile(filepath.Join(keep, name), b, 0o600))
	}
	ts.Fatalf("%d files of 1 MiB written and fsynced without an error: the full disk went unnoticed", max)
}

// check-filled DIR: every file fill-until-error made durable is in DIR
// with the same bytes.
func cmdCheckFilled(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: check-filled DIR")
	}
	entries, err := os.ReadDir(ts.MkAbs("filled"))
	ts.Check(err)
	if len(entries) == 0 {
		ts.Fatalf("no file was made durable before the disk filled")
	}
	for _, e := range entries {
		want, err := os.ReadFile(filepath.Join(ts.MkAbs("filled"), e.Name()))
		ts.Check(err)
		got, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			ts.Fatalf("%s, made durable before the disk filled, is lost or changed: %v", e.Name(), err)
		}
	}
	ts.Logf("all %d durable files intact", len(entries))
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
