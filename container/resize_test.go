package container

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/cryptvol/cryptvol/header"
)

func TestGrow(t *testing.T) {
	for _, fill := range []Fill{FillSparse, FillRandom} {
		path, vol := create(t, 64<<10, 512, "pw")
		data := randomBytes(64 << 10)
		writeFull(t, vol, data, 0)
		vol.Close()
		oldBackup := readFile(t, path, header.DataAlignment+64<<10, header.Size)

		v := mustUnlock(t, path, "pw")
		var last int64
		if err := v.Grow(t.Context(), 256<<10, fill, func(done, total int64) { last = done }); err != nil {
			t.Fatal(err)
		}
		if err := v.Grow(t.Context(), 128<<10, fill, nil); !errors.Is(err, ErrShrink) {
			t.Fatalf("shrink: %v", err)
		}
		if err := v.Grow(t.Context(), 256<<10+100, fill, nil); err == nil {
			t.Fatal("a size that is not whole sectors was accepted")
		}
		v.Close()
		if fill == FillRandom && last != 192<<10 {
			t.Fatalf("progress ended at %d", last)
		}
		info, err := Inspect(path)
		if err != nil || info.Geometry.Size != 256<<10 || info.Sequence != 2 ||
			info.FileSize != header.DataAlignment+256<<10+header.Size || info.Primary.Problem != "" || info.Backup.Problem != "" {
			t.Fatalf("after growing: %+v, %v", info, err)
		}
		if equal(readFile(t, path, header.DataAlignment+64<<10, header.Size), oldBackup) {
			t.Fatal("the old backup header (with the keyslots) is still in the file")
		}
		vol = mustOpen(t, path, "pw", nil)
		if vol.Size() != 256<<10 || !equal(readFull(t, vol, 64<<10, 0), data) {
			t.Fatal("data changed by growing")
		}
		more := randomBytes(192 << 10)
		writeFull(t, vol, more, 64<<10)
		if !equal(readFull(t, vol, 192<<10, 64<<10), more) {
			t.Fatal("the new space does not hold data")
		}
		vol.Close()
	}
}

func TestGrowRefusesOpenVault(t *testing.T) {
	path := createClosed(t, 8192, "pw")
	vol := mustOpen(t, path, "pw", nil)
	v := mustUnlock(t, path, "pw")
	if err := v.Grow(t.Context(), 16384, FillSparse, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("growing an open vault: %v", err)
	}
	vol.Close()
}

// TestGrowCrash stops a grow at every step (after extending the file, after
// overwriting the old backup, and at every header write and sync) and checks
// that the vault opens with the old or the new size and its data intact.
func TestGrowCrash(t *testing.T) {
	template, vol := create(t, 8192, 4096, "pw")
	data := randomBytes(8192)
	writeFull(t, vol, data, 0)
	vol.Close()
	check := func(name, path string) {
		t.Helper()
		vol := mustOpen(t, path, "pw", nil)
		defer vol.Close()
		if s := vol.Size(); s != 8192 && s != 16384 {
			t.Fatalf("%s: size %d", name, s)
		}
		if !equal(readFull(t, vol, 8192, 0), data) {
			t.Fatalf("%s: data changed", name)
		}
		info, _ := Inspect(path)
		if info.Primary.Problem != "" || info.Backup.Problem != "" {
			t.Fatalf("%s: not repaired: %+v", name, info)
		}
	}
	// The steps before the header writes, done by hand.
	for _, step := range []string{"extended", "old backup overwritten"} {
		path := filepath.Join(t.TempDir(), "v.cv")
		copyFile(t, template, path)
		v := mustUnlock(t, path, "pw")
		v1of(v).f.Truncate(header.DataAlignment + 16384 + header.Size)
		if step == "old backup overwritten" {
			if err := v1of(v).overwrite(t.Context(), 8192, 8192+header.Size, nil); err != nil {
				t.Fatal(err)
			}
		}
		v.Close()
		check(step, path)
	}
	for tear := range 2 {
		for n := 1; ; n++ {
			path := filepath.Join(t.TempDir(), "v.cv")
			copyFile(t, template, path)
			v := mustUnlock(t, path, "pw")
			cf := &crashingFile{f: v1of(v).ops, n: n, tear: tear == 1}
			v1of(v).ops = cf
			err := v.Grow(t.Context(), 16384, FillSparse, nil)
			v.Close()
			if err != nil && !errors.Is(err, errCrash) {
				t.Fatal(err)
			}
			check("header write", path)
			if !cf.crashed {
				break
			}
		}
	}
}
