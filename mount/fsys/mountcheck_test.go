package fsys

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// TestBtrfsBesideUnstatableMount: a mount whose source cannot be stat'ed (here
// a tmpfs named /dev/null/x, ENOTDIR; in life, what an image inside another
// user's FUSE mount gives root: EACCES) no longer stops mkfs.btrfs and btrfs
// check, and stays mounted for everyone else.
func TestBtrfsBesideUnstatableMount(t *testing.T) {
	e2e.Root(t)
	f := mustLookup(t, "btrfs")
	e2e.Tools(t, f.MkfsProgram(), f.check, "umount")
	mp := filepath.Join(t.TempDir(), "odd")
	if err := os.Mkdir(mp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/dev/null/x", mp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mp, unix.MNT_DETACH) })
	hide, err := unstatableMounts()
	if err != nil || !slices.Contains(hide, mp) {
		t.Fatalf("unstatableMounts = %q, %v; want %s in it", hide, err, mp)
	}
	img := filepath.Join(t.TempDir(), "img")
	os.WriteFile(img, nil, 0o600)
	os.Truncate(img, 128<<20)
	if err := Mkfs(img, "btrfs", "odd"); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(context.Background(), img, "btrfs"); err != nil {
		t.Fatal(err)
	}
	if ok, err := IsMounted(mp); err != nil || !ok {
		t.Errorf("the odd mount is gone from this namespace: %v, %v", ok, err)
	}
}
