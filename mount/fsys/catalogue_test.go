package fsys

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// fuse2fsOptions are the defaults fuse2fs 1.47 would add, less its fsname.
const fuse2fsOptions = "no_default_opts,kernel_cache,subtype=ext4,use_ino,attr_timeout=0,big_writes,fsname="

func TestCatalogueDrivers(t *testing.T) {
	for probed, want := range map[string]string{"ext2": "fuse2fs", "ext3": "fuse2fs", "ext4": "fuse2fs", "vfat": "fusefat", "xfs": "", "btrfs": ""} {
		f, err := ForType(probed)
		if err != nil {
			t.Errorf("ForType(%s): %v", probed, err)
			continue
		}
		if f.Driver != want {
			t.Errorf("%s: driver %q, want %q", probed, f.Driver, want)
		}
		if (f.Driver == "") != (f.DriverPackage == "") {
			t.Errorf("%s: driver %q from package %q", probed, f.Driver, f.DriverPackage)
		}
	}
	if _, err := ForType("ntfs"); err == nil {
		t.Error("ForType(ntfs) found an entry")
	}
	ext4, _ := Lookup("ext4")
	for _, c := range []struct {
		f        Filesystem
		ro       bool
		uid, gid int
		opts     string
		want     []string
	}{
		{ext4, false, -1, -1, "", []string{"fuse2fs", "/f", "/d", "-f", "-o", "rw," + fuse2fsOptions + "cv:1"}},
		{ext4, true, -1, -1, "noatime,", []string{"fuse2fs", "/f", "/d", "-f", "-o", "ro," + fuse2fsOptions + "cv:1", "-o", "noatime"}},
	} {
		if got := c.f.DriverCommand("/f", "/d", "cv:1", c.ro, c.uid, c.gid, c.opts); !slices.Equal(got, c.want) {
			t.Errorf("%s ro=%v: %q, want %q", c.f.Name, c.ro, got, c.want)
		}
	}
	vfat, _ := Lookup("vfat")
	got := strings.Join(vfat.DriverCommand("/f", "/d", "cv:1", false, 1000, 1001, ""), " ")
	if want := "fusefat /f /d -f -s -o rw+,fsname=cv:1 -o uid=1000,gid=1001"; got != want {
		t.Errorf("vfat: %q, want %q", got, want)
	}
	got = strings.Join(vfat.DriverCommand("/f", "/d", "cv:1", true, -1, -1, ""), " ")
	if want := "fusefat /f /d -f -s -o ro,fsname=cv:1"; got != want {
		t.Errorf("vfat read-only: %q, want %q", got, want)
	}
	xfs, _ := Lookup("xfs")
	if xfs.DriverCommand("/f", "/d", "cv:1", false, -1, -1, "") != nil {
		t.Error("xfs has a driver command")
	}
}

// TestMkfsImage makes each filesystem in a regular file for both sector
// sizes and checks what a block device would have told mkfs: sectors (or
// blocks) no smaller than the vault's, and for ext4 the owner of the root
// directory.
func TestMkfsImage(t *testing.T) {
	for _, f := range Filesystems() {
		for _, ss := range []int{512, 4096} {
			t.Run(f.Name+"-"+strconv.Itoa(ss), func(t *testing.T) {
				if _, err := LookPath(f.MkfsProgram()); err != nil {
					e2e.Skip(t, f.MkfsProgram()+" is not installed (package "+f.Package+")")
				}
				img := filepath.Join(t.TempDir(), "img")
				if err := os.WriteFile(img, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				size := max(f.MinSize, 32<<20)
				if err := os.Truncate(img, size); err != nil {
					t.Fatal(err)
				}
				if err := MkfsImage(img, f.Name, ImageOptions{SectorSize: ss, UID: 1234, GID: 5678}); err != nil {
					t.Fatal(err)
				}
				fh, err := os.Open(img)
				if err != nil {
					t.Fatal(err)
				}
				defer fh.Close()
				got, err := probeFS(fh)
				if err != nil || got != f.Name {
					t.Fatalf("probe: %q, %v", got, err)
				}
				sb := make([]byte, 4096)
				fh.ReadAt(sb, 0)
				var unit int
				switch f.Name {
				case "ext4":
					unit = 1024 << binary.LittleEndian.Uint32(sb[1024+24:])
					debugfs, err := LookPath("debugfs")
					if err != nil {
						e2e.Skip(t, "debugfs is not installed (package e2fsprogs)")
					}
					out, err := exec.Command(debugfs, "-R", "stat /", img).CombinedOutput()
					if err != nil || !strings.Contains(string(out), "User:  1234   Group:  5678") {
						t.Errorf("root directory not owned by 1234:5678: %s", out)
					}
				case "xfs":
					unit = int(binary.BigEndian.Uint16(sb[102:]))
				case "vfat":
					unit = int(binary.LittleEndian.Uint16(sb[11:]))
				case "btrfs":
					unit = 4096 // its sectors are 4 KiB whatever the device
				}
				if unit < ss {
					t.Errorf("%s made with %d-byte units on a %d-byte sector vault", f.Name, unit, ss)
				}
			})
		}
	}
	if err := MkfsImage("/nonexistent", "ext4", ImageOptions{SectorSize: 1024}); err == nil {
		t.Error("sector size 1024 accepted")
	}
}
