// Package vmtest is the real-kernel lab: it boots Debian's own kernel under
// qemu with a busybox initramfs, runs chosen tests inside the guest, and
// reports them on the host as ordinary Go test results.
//
// The machines the project runs on have a kernel without nbd, dm-crypt and
// vfat, so the tests that need them (the kernel NBD path, the dm-crypt
// recovery recipe of docs/FORMAT.md §6, vfat mounted for real) would only
// skip there. The lab gives them a kernel that has them, and makes power
// cuts possible: the host kills qemu at any moment, or records every write
// and flush reaching the virtual disk (qemu's blklogwrites driver) and
// replays that log up to each flush point.
//
// The guest is built from Debian packages (linux-image-amd64 and
// busybox-static, fetched with `apt-get download` and cached under
// CacheDir, keyed by their versions), the test binaries (built with
// CGO_ENABLED=0), and the host's own tools with the libraries they link.
// Everything a guest test needs is in its initramfs: there is no network and
// no shared folder. Test output comes back on the second serial port.
//
// What runs where is written once, in suites.go. scripts/kernel-lab runs the
// lab by hand; ./scripts/test runs it through TestLab, TestPowercut and
// TestLogReplay in their short forms.
package vmtest
