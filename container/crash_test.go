package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var errCrash = errors.New("simulated crash")

// crashingFile passes header writes and syncs through until the nth one, which
// "crashes": a write is torn (its first half reaches the file) or dropped, a
// sync fails after its write has reached the file; nothing after reaches it.
type crashingFile struct {
	f       fileOps
	n, ops  int
	tear    bool
	crashed bool
}

func (c *crashingFile) step() bool {
	if c.crashed {
		return false
	}
	c.ops++
	if c.ops == c.n {
		c.crashed = true
		return false
	}
	return true
}

func (c *crashingFile) WriteAt(p []byte, off int64) (int, error) {
	if !c.step() {
		if c.tear && c.ops == c.n {
			c.f.WriteAt(p[:len(p)/2], off)
		}
		return 0, errCrash
	}
	return c.f.WriteAt(p, off)
}

func (c *crashingFile) Sync() error {
	if !c.step() {
		return errCrash
	}
	return c.f.Sync()
}

// TestCrashAtEveryStep interrupts every header change at every write and sync,
// torn or not, and checks the invariant of docs/FORMAT.md §9: the vault opens
// with exactly the old or the new set of passphrases (for a change, also both),
// and its data is intact.
func TestCrashAtEveryStep(t *testing.T) {
	template, vol := create(t, 8192, 4096, "a")
	data := randomBytes(8192)
	writeFull(t, vol, data, 0)
	vol.Close()
	backup, _ := BackupHeader(template) // holds "a" only

	type op struct {
		name    string
		prepare func(t *testing.T, path string) // before the crashing run
		run     func(path string, wrap func(fileOps) fileOps) error
		allowed [][]string // acceptable sets of working passphrases
	}
	unlockAndWrap := func(path, pass string, wrap func(fileOps) fileOps) (*Vault, error) {
		v, err := Unlock(path, Passphrase([]byte(pass)), nil)
		if err != nil {
			return nil, err
		}
		v1of(v).ops = wrap(v1of(v).ops)
		return v, nil
	}
	addB := func(t *testing.T, path string) {
		v := mustUnlock(t, path, "a")
		if _, err := v.AddPassphrase(Passphrase([]byte("b")), tiny, -1); err != nil {
			t.Fatal(err)
		}
		v.Close()
	}
	ops := []op{
		{"change", nil, func(path string, wrap func(fileOps) fileOps) error {
			v, err := unlockAndWrap(path, "a", wrap)
			if err != nil {
				return err
			}
			defer v.Close()
			return v.ChangePassphrase(0, Passphrase([]byte("b")), tiny)
		}, [][]string{{"a"}, {"a", "b"}, {"b"}}},
		{"add", nil, func(path string, wrap func(fileOps) fileOps) error {
			v, err := unlockAndWrap(path, "a", wrap)
			if err != nil {
				return err
			}
			defer v.Close()
			_, err = v.AddPassphrase(Passphrase([]byte("b")), tiny, -1)
			return err
		}, [][]string{{"a"}, {"a", "b"}}},
		{"remove", addB, func(path string, wrap func(fileOps) fileOps) error {
			v, err := unlockAndWrap(path, "a", wrap)
			if err != nil {
				return err
			}
			defer v.Close()
			return v.RemoveSlot(1)
		}, [][]string{{"a", "b"}, {"a"}}},
		{"restore", func(t *testing.T, path string) {
			v := mustUnlock(t, path, "a")
			v.ChangePassphrase(0, Passphrase([]byte("b")), tiny)
			v.Close()
		}, func(path string, wrap func(fileOps) fileOps) error {
			return restoreHeader(path, backup, Passphrase([]byte("a")), nil, wrap)
		}, [][]string{{"b"}, {"a"}}},
		{"repair", func(t *testing.T, path string) {
			patchFile(t, path, 1000, []byte{0xee}) // damage the primary
		}, func(path string, wrap func(fileOps) fileOps) error {
			v, err := openVaultFile(path, false, nil)
			if err != nil {
				return err
			}
			defer v.close()
			if err := v.unlock(context.Background(), []byte("a"), nil, nil); err != nil {
				return err
			}
			v.ops = wrap(v.ops)
			return v.repair()
		}, [][]string{{"a"}}},
	}
	trials := 0
	for _, o := range ops {
		for _, tear := range []bool{false, true} {
			for n := 1; ; n++ {
				path := filepath.Join(t.TempDir(), "v.cv")
				copyFile(t, template, path)
				if o.prepare != nil {
					o.prepare(t, path)
				}
				cf := &crashingFile{n: n, tear: tear}
				err := o.run(path, func(f fileOps) fileOps { cf.f = f; return cf })
				trials++
				name := fmt.Sprintf("%s tear=%v crash at step %d", o.name, tear, n)
				if err != nil && !errors.Is(err, errCrash) {
					t.Fatalf("%s: %v", name, err)
				}
				var working []string
				for _, p := range []string{"a", "b"} {
					if opens(t, path, p) {
						working = append(working, p)
					}
				}
				if !slices.ContainsFunc(o.allowed, func(a []string) bool { return slices.Equal(a, working) }) {
					t.Fatalf("%s: opens with %v, want one of %v", name, working, o.allowed)
				}
				vol := mustOpen(t, path, working[0], nil)
				if !equal(readFull(t, vol, 8192, 0), data) {
					t.Fatalf("%s: data changed", name)
				}
				vol.Close()
				if !cf.crashed { // the operation ran to completion: every step was covered
					if want := o.allowed[len(o.allowed)-1]; !slices.Equal(working, want) {
						t.Fatalf("%s: completed but opens with %v, want %v", name, working, want)
					}
					break
				}
			}
		}
	}
	t.Logf("%d crash trials", trials)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
}
