package container

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cryptvol/cryptvol/header"
)

// inspectSeed is a vault file in three parts: head at offset 0, then a hole
// of gap bytes, then tail. A golden vault is its first and last header block
// around a hole where its data area was: readLayout reads nothing else.
type inspectSeed struct {
	head []byte
	gap  uint32
	tail []byte
}

// inspectSeeds returns the golden vaults in that form, and small files.
func inspectSeeds(t testing.TB) []inspectSeed {
	paths, _ := filepath.Glob(filepath.Join("..", "testvectors", "vaults", "*.cv.gz"))
	var seeds []inspectSeed
	for _, p := range paths {
		path := gunzipTo(t, p)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n := len(b)
		seeds = append(seeds,
			inspectSeed{b[:header.Size], uint32(n - 2*header.Size), b[n-header.Size:]},
			inspectSeed{b[:header.Size], 0, nil}, // only the primary
		)
	}
	seeds = append(seeds,
		inspectSeed{},
		inspectSeed{[]byte("CRYPTVOL"), 0, nil},
		inspectSeed{make([]byte, header.Size), header.DataAlignment, make([]byte, header.Size)},
	)
	return seeds
}

func TestInspectFuzzSeeds(t *testing.T) {
	seeds := inspectSeeds(t)
	golden := 0
	for _, s := range seeds {
		if checkLayout(t, filepath.Join(t.TempDir(), "v.cv"), s.head, s.gap, s.tail) {
			golden++
		}
	}
	if golden < 2 {
		t.Fatalf("only %d of the seeds are valid vaults: the golden vaults are missing", golden)
	}
}

// FuzzInspect writes arbitrary contents as a vault file and reads it with
// Inspect, and, when a header copy is valid and cheap to derive, unlocks it
// with the golden passphrases: nothing panics, errors are ErrDamaged or a
// wrong passphrase, a read-only unlock changes nothing, and a read-write
// unlock leaves both header copies intact.
func FuzzInspect(f *testing.F) {
	for _, s := range inspectSeeds(f) {
		f.Add(s.head, s.gap, s.tail)
	}
	dir := f.TempDir() // one per worker process: every run reuses the file
	f.Fuzz(func(t *testing.T, head []byte, gap uint32, tail []byte) {
		checkLayout(t, filepath.Join(dir, "v.cv"), head, gap, tail)
	})
}

// goldenPassphrases open the golden vaults' slots.
var goldenPassphrases = []string{"golden passphrase one", "gcm slot passphrase", "pässphrase ünicode 🔑"}

// checkLayout makes the file and checks it; it reports whether it is a
// vault that opens.
func checkLayout(t *testing.T, path string, head []byte, gap uint32, tail []byte) bool {
	gap %= 64 << 20 // sparse, but read whole by the checks below
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(head, 0)
	f.WriteAt(tail, int64(len(head))+int64(gap))
	if err := f.Truncate(int64(len(head)) + int64(gap) + int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	f.Close()

	info, err := Inspect(path)
	if err != nil {
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Inspect: %v is not ErrDamaged", err)
		}
		if info != nil {
			t.Fatal("Inspect returned information with an error")
		}
		return false
	}
	if need := info.Geometry.Offset + info.Geometry.Size + header.Size; need > info.FileSize {
		t.Fatalf("the winning header needs %d bytes, the file has %d", need, info.FileSize)
	}
	// Unlocking derives a key per slot: only for the cheapest parameters.
	l := mustLayout(t, path)
	for _, c := range []*headerCopy{&l.primary, &l.backup} {
		if c.valid() {
			for _, i := range c.h.ActiveSlots() {
				if s := c.h.Slots[i]; s.Memory > 8192 || s.Iterations > 2 || s.Threads > 2 {
					return false
				}
			}
		}
	}
	before, _ := os.ReadFile(path)
	opened := false
	for _, pass := range goldenPassphrases {
		v, err := Unlock(path, Passphrase([]byte(pass)), &UnlockOptions{ReadOnly: true})
		if err != nil {
			if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrDamaged) {
				t.Fatalf("read-only Unlock: %v", err)
			}
			continue
		}
		v.Close()
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("a read-only unlock changed the file")
		}
		v, err = Unlock(path, Passphrase([]byte(pass)), nil)
		if err != nil {
			t.Fatalf("read-write Unlock after a read-only one opened: %v", err)
		}
		v.Close()
		info, err := Inspect(path)
		if err != nil {
			t.Fatalf("Inspect after a read-write unlock: %v", err)
		}
		if info.Primary.Problem != "" || info.Backup.Problem != "" {
			t.Fatalf("after a read-write unlock: primary %q, backup %q", info.Primary.Problem, info.Backup.Problem)
		}
		opened = true
		break
	}
	return opened
}

func mustLayout(t *testing.T, path string) *layout {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := readLayout(f)
	if err != nil {
		t.Fatalf("readLayout after Inspect succeeded: %v", err)
	}
	return l
}
