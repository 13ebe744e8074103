package fsys

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// synthetic returns a zeroed 128 KiB device image changed by edit.
func synthetic(edit func(b []byte)) []byte {
	b := make([]byte, 128<<10)
	if edit != nil {
		edit(b)
	}
	return b
}

func extSuper(compat, incompat, roCompat uint32) func([]byte) {
	return func(b []byte) {
		sb := b[1024:]
		binary.LittleEndian.PutUint16(sb[0x38:], 0xef53)
		binary.LittleEndian.PutUint32(sb[0x5c:], compat)
		binary.LittleEndian.PutUint32(sb[0x60:], incompat)
		binary.LittleEndian.PutUint32(sb[0x64:], roCompat)
	}
}

// fatBoot writes a FAT boot sector with the type string at typeOff.
func fatBoot(typeOff int, typ string) func([]byte) {
	return func(b []byte) {
		copy(b, []byte{0xeb, 0x58, 0x90})
		copy(b[3:], "mkfs.fat")
		binary.LittleEndian.PutUint16(b[11:], 512) // bytes per sector
		b[13] = 8                                  // sectors per cluster
		binary.LittleEndian.PutUint16(b[14:], 32)  // reserved sectors
		b[16] = 2                                  // FATs
		b[21] = 0xf8                               // media
		copy(b[typeOff:], typ)
		b[510], b[511] = 0x55, 0xaa
	}
}

func TestProbeSyntheticSuperblocks(t *testing.T) {
	both := func(fs ...func([]byte)) func([]byte) {
		return func(b []byte) {
			for _, f := range fs {
				f(b)
			}
		}
	}
	xfs := func(b []byte) { copy(b, "XFSB") }
	btrfs := func(b []byte) { copy(b[65600:], "_BHRfS_M") }
	for _, c := range []struct {
		name, want string
		image      []byte
	}{
		{"xfs", "xfs", synthetic(xfs)},
		{"btrfs", "btrfs", synthetic(btrfs)},
		{"ext2", "ext2", synthetic(extSuper(0, 0x2, 0x3))},
		{"ext3", "ext3", synthetic(extSuper(0x4, 0x2, 0x3))},
		{"ext4 extents", "ext4", synthetic(extSuper(0x4, 0x2|0x40, 0x3))},
		{"ext4 metadata_csum", "ext4", synthetic(extSuper(0x4, 0x2, 0x3|0x400))},
		{"fat32", "vfat", synthetic(fatBoot(82, "FAT32   "))},
		{"fat16", "vfat", synthetic(fatBoot(54, "FAT16   "))},
		{"fat12", "vfat", synthetic(fatBoot(54, "FAT12   "))},
		{"xfs on a short device", "xfs", []byte("XFSB and nothing else")},
	} {
		got, err := probeFS(bytes.NewReader(c.image))
		if err != nil || got != c.want {
			t.Errorf("%s: probe = %q, %v; want %q", c.name, got, err, c.want)
		}
	}

	for _, c := range []struct {
		name  string
		image []byte
	}{
		{"zeros", synthetic(nil)},
		{"empty device", nil},
		{"ext magic one byte off", synthetic(func(b []byte) { b[1081], b[1082] = 0x53, 0xef })},
		{"btrfs magic at 64 KiB without the 64", synthetic(func(b []byte) { copy(b[65536:], "_BHRfS_M") })},
		{"ntfs boot sector", synthetic(func(b []byte) {
			copy(b, []byte{0xeb, 0x52, 0x90})
			copy(b[3:], "NTFS    ")
			binary.LittleEndian.PutUint16(b[11:], 512)
			b[13] = 8
			b[21] = 0xf8
			b[510], b[511] = 0x55, 0xaa
		})},
		{"fat without signature", synthetic(func(b []byte) { fatBoot(82, "FAT32   ")(b); b[511] = 0 })},
		{"fat with zero sector size", synthetic(func(b []byte) { fatBoot(82, "FAT32   ")(b); b[11], b[12] = 0, 0 })},
		{"mbr-like without fat type", synthetic(func(b []byte) { fatBoot(82, "")(b); copy(b[82:], "LINUX   ") })},
	} {
		if got, err := probeFS(bytes.NewReader(c.image)); !errors.Is(err, ErrNoFilesystem) {
			t.Errorf("%s: probe = %q, %v; want ErrNoFilesystem", c.name, got, err)
		}
	}

	got, err := probeFS(bytes.NewReader(synthetic(both(xfs, btrfs))))
	if err == nil || errors.Is(err, ErrNoFilesystem) || !strings.Contains(err.Error(), "xfs and btrfs") {
		t.Errorf("two signatures: probe = %q, %v; want an ambiguity error naming both", got, err)
	}
}

func TestProbeReadError(t *testing.T) {
	f, err := os.Open(t.TempDir()) // reading a directory fails with EISDIR
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := probeFS(f); err == nil || errors.Is(err, ErrNoFilesystem) {
		t.Errorf("probe of an unreadable device = %q, %v; want the read error", got, err)
	}
	if _, err := Probe(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Probe of a missing device: %v", err)
	}
}

// TestMkfsProbe makes each filesystem on a sparse file (mkfs does not need a
// block device, so no root) and checks that Probe recognises it.
func TestMkfsProbe(t *testing.T) {
	for _, fstype := range Names() {
		t.Run(fstype, func(t *testing.T) {
			e2e.Tools(t, mustLookup(t, fstype).MkfsProgram())
			img := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(img, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 320<<20); err != nil { // xfs needs 300 MiB
				t.Fatal(err)
			}
			if err := Mkfs(img, fstype, "CVTEST"); err != nil {
				t.Fatal(err)
			}
			got, err := Probe(img)
			if err != nil || got != fstype {
				t.Errorf("Probe after Mkfs %s = %q, %v", fstype, got, err)
			}
		})
	}
}

func TestMkfsRefuses(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	if err := Mkfs(img, "ntfs", ""); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("unsupported type: %v", err)
	}
	if err := Mkfs(img, "vfat", "TWELVE_CHARS"); err == nil || !strings.Contains(err.Error(), "longer than the 11 bytes") {
		t.Errorf("long vfat label: %v", err)
	}
	if err := Mkfs(img, "ext4", "a\nb"); err == nil {
		t.Error("label with a newline accepted")
	}
}

func TestMkfsReportsOutput(t *testing.T) {
	e2e.Tools(t, "mkfs.ext4")
	err := Mkfs(filepath.Join(t.TempDir(), "missing", "img"), "ext4", "")
	if err == nil || !strings.Contains(err.Error(), "mkfs ext4 on") || !strings.Contains(err.Error(), "exit status") {
		t.Errorf("failing mkfs: %v; want its exit status and output", err)
	}
	t.Log(err)
}

func mustLookup(t *testing.T, name string) Filesystem {
	t.Helper()
	f, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCheck runs each filesystem's read-only check (the catalogue's) on a
// fresh one: it passes and changes nothing. An ext4 whose root directory
// claims a wrong link count (the kernel mounts it all the same) does not
// pass, and the error carries the checker's own words.
func TestCheck(t *testing.T) {
	for _, fstype := range Names() {
		t.Run(fstype, func(t *testing.T) {
			f := mustLookup(t, fstype)
			e2e.Tools(t, f.MkfsProgram(), f.check)
			img := filepath.Join(t.TempDir(), "img")
			os.WriteFile(img, nil, 0o600)
			os.Truncate(img, 320<<20)
			if err := Mkfs(img, fstype, ""); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(img)
			cmd, err := Check(context.Background(), img, fstype)
			if err != nil {
				t.Fatalf("%s on a fresh %s: %v", cmd, fstype, err)
			}
			if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
				t.Fatalf("%s changed the filesystem", cmd)
			}
			if fstype != "ext4" {
				return
			}
			e2e.Tools(t, "debugfs")
			if out, err := exec.Command("debugfs", "-w", "-R", "sif <2> links_count 7", img).CombinedOutput(); err != nil {
				t.Fatalf("debugfs: %v: %s", err, out)
			}
			_, err = Check(context.Background(), img, "ext3") // ext2 and ext3 are ext4's
			var ce *CheckError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCheckFailed) || !strings.Contains(ce.Output, "Filesystem still has errors") {
				t.Fatalf("a wrong link count: %v", err)
			}
			t.Log(err)
		})
	}
	if _, err := Check(context.Background(), "/dev/null", "ntfs"); err == nil {
		t.Error("a filesystem outside the catalogue was checked")
	}
}

func TestCheckOutputBounded(t *testing.T) {
	var b tailBuffer
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "line %d\n\n", i)
	}
	got := b.lastLines()
	if !strings.HasSuffix(got, "line 9998; line 9999") || len(got) > checkOutputMax+2 || len(b.b) > 64<<10 {
		t.Fatalf("%d bytes kept, last lines %q", len(b.b), got)
	}
	b = tailBuffer{}
	b.Write(bytes.Repeat([]byte("x"), 5000))
	if got := b.lastLines(); len(got) > checkOutputMax+len("…") {
		t.Fatalf("a long line kept %d bytes", len(got))
	}
}
