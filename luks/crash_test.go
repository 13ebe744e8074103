package luks

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

// crashDevice passes writes and syncs through until the nth one, which
// "crashes": a write is torn (its first half reaches the file) or dropped, a
// sync fails after its write has reached the file; nothing after reaches it.
type crashDevice struct {
	Device
	n, ops  int
	tear    bool
	crashed bool
}

func (c *crashDevice) step() bool {
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

func (c *crashDevice) WriteAt(p []byte, off int64) (int, error) {
	if !c.step() {
		if c.tear && c.ops == c.n {
			c.Device.WriteAt(p[:len(p)/2], off)
		}
		return 0, errCrash
	}
	return c.Device.WriteAt(p, off)
}

func (c *crashDevice) Sync() error {
	if !c.step() {
		return errCrash
	}
	return c.Device.Sync()
}

// TestCrashAtEveryStep interrupts every key change — add, change, remove, and
// a repair — at every write and sync, torn or not, on LUKS1 and LUKS2 (also
// with one LUKS2 copy damaged beforehand, so the update must write the other
// one first), and checks that the volume then opens with exactly the old or
// the new set of secrets, that cryptsetup agrees, and that a repair and a
// further change still work.
func TestCrashAtEveryStep(t *testing.T) {
	needCryptsetup(t)
	formats := map[string][]string{
		"luks1": {"--type", "luks1", "--key-size", "512", "--pbkdf-force-iterations", "1000"},
		"luks2": append([]string{"--type", "luks2"}, cheapKDF["argon2id"]...),
	}
	a, b := []byte("a"), []byte("b")
	type op struct {
		name    string
		luks2   bool
		prepare func(t *testing.T, path string)
		run     func(h *Header, dev Device) error
		allowed [][]string
	}
	kdfArgs := map[bool][]string{false: {"--pbkdf-force-iterations", "1000"}, true: cheapKDF["argon2id"]}
	withB := func(luks2 bool) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { csAddKey(t, path, a, b, kdfArgs[luks2]...) }
	}
	damage := func(off int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { patch(t, path, off+luks2OffCsum, []byte{0xff}) }
	}
	add := func(h *Header, dev Device) error {
		vk, _, err := h.Unlock(context.Background(), dev, a, AnySlot)
		if err != nil {
			return err
		}
		defer vk.Destroy()
		_, err = h.AddKey(context.Background(), dev, vk, b, cheapFor(h))
		return err
	}
	var ops []op
	for _, v := range []string{"luks1", "luks2"} {
		l2 := v == "luks2"
		ops = append(ops,
			op{v + " add", l2, nil, add, [][]string{{"a"}, {"a", "b"}}},
			op{v + " change", l2, nil, func(h *Header, dev Device) error {
				vk, _, err := h.Unlock(context.Background(), dev, a, AnySlot)
				if err != nil {
					return err
				}
				defer vk.Destroy()
				_, err = h.ChangeKey(context.Background(), dev, vk, 0, b, cheapFor(h))
				return err
			}, [][]string{{"a"}, {"a", "b"}, {"b"}}},
			op{v + " remove", l2, withB(l2), func(h *Header, dev Device) error { return h.RemoveKey(dev, 1) },
				[][]string{{"a", "b"}, {"a"}}},
		)
	}
	ops = append(ops,
		op{"luks2 add, secondary damaged", true, damage(0x4000), add, [][]string{{"a"}, {"a", "b"}}},
		op{"luks2 add, primary damaged", true, damage(0), add, [][]string{{"a"}, {"a", "b"}}},
		op{"luks2 repair", true, damage(0), func(h *Header, dev Device) error { return h.Repair(dev) }, [][]string{{"a"}}},
	)
	templates := map[string]string{}
	for v, f := range formats {
		templates[v] = csFormat(t, t.TempDir(), 20<<20, a, f...)
	}
	trials := 0
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			v := "luks1"
			if o.luks2 {
				v = "luks2"
			}
			for _, tear := range []bool{false, true} {
				for n := 1; ; n++ {
					path := filepath.Join(t.TempDir(), "v.img")
					copyFile(t, templates[v], path)
					if o.prepare != nil {
						o.prepare(t, path)
					}
					h, f := rwDevice(t, path)
					cd := &crashDevice{Device: f, n: n, tear: tear}
					err := o.run(h, cd)
					trials++
					name := fmt.Sprintf("tear=%v crash at step %d", tear, n)
					if err != nil && !errors.Is(err, errCrash) {
						t.Fatalf("%s: %v", name, err)
					}
					working := openSet(t, path, map[string][]byte{"a": a, "b": b})
					if !slices.ContainsFunc(o.allowed, func(s []string) bool { return slices.Equal(s, working) }) {
						t.Fatalf("%s: opens with %v, want one of %v", name, working, o.allowed)
					}
					for name, s := range map[string][]byte{"a": a, "b": b} {
						if csOpens(t, path, s) != slices.Contains(working, name) {
							t.Fatalf("%s: cryptsetup disagrees on secret %s", name, s)
						}
					}
					if !cd.crashed {
						if want := o.allowed[len(o.allowed)-1]; !slices.Equal(working, want) {
							t.Fatalf("%s: completed but opens with %v, want %v", name, working, want)
						}
						break
					}
					// After the crash: repair, then a further change works.
					h2, f2 := rwDevice(t, path)
					if err := h2.Repair(f2); err != nil {
						t.Fatalf("%s: Repair: %v", name, err)
					}
					for _, c := range h2.Info().Copies {
						if c.Problem != "" {
							t.Fatalf("%s: after Repair the %s copy: %s", name, c.Name, c.Problem)
						}
					}
					vk, _, err := h2.Unlock(context.Background(), f2, []byte(working[0]), AnySlot)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if _, err := h2.AddKey(context.Background(), f2, vk, []byte("c"), cheapFor(h2)); err != nil {
						t.Fatalf("%s: AddKey after the crash: %v", name, err)
					}
					vk.Destroy()
					if !csOpens(t, path, []byte("c")) {
						t.Fatalf("%s: cryptsetup does not open the key added after the crash", name)
					}
				}
			}
		})
	}
	t.Logf("%d crash trials", trials)
}

// openSet returns the names of the secrets that open path, sorted.
func openSet(t *testing.T, path string, secrets map[string][]byte) []string {
	t.Helper()
	h, f := readHeader(t, path)
	var names []string
	for name, s := range secrets {
		vk, _, err := h.Unlock(context.Background(), f, s, AnySlot)
		if err == nil {
			vk.Destroy()
			names = append(names, name)
		} else if !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("Unlock with %s: %v", name, err)
		}
	}
	slices.Sort(names)
	return names
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

func patch(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
