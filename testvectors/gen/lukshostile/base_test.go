package lukshostile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// TestBasesOpenInCryptsetup checks the bases with cryptsetup itself: the
// passphrase opens them and the volume key is the one the generator holds.
func TestBasesOpenInCryptsetup(t *testing.T) {
	e2e.Tools(t, "cryptsetup")
	for name, make := range map[string]func(string) (Base, error){"luks1": MakeBase1, "luks2": MakeBase2} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := make(filepath.Join(dir, "base.img"))
			if err != nil {
				t.Fatal(err)
			}
			vkf := filepath.Join(dir, "vk")
			cmd := exec.Command("cryptsetup", "--batch-mode", "luksDump", "--dump-volume-key", "--volume-key-file", vkf, "--key-file=-", b.Path)
			cmd.Stdin = bytes.NewReader(b.Passphrase)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cryptsetup luksDump --dump-volume-key: %v\n%s", err, out)
			}
			if vk, _ := os.ReadFile(vkf); !bytes.Equal(vk, b.VolumeKey) {
				t.Fatalf("cryptsetup reads volume key %x, the generator wrote %x", vk, b.VolumeKey)
			}
		})
	}
}

// TestCasesAreDistinct checks that case names are unique and each is made.
func TestCasesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases() {
		if seen[c.Name] {
			t.Fatalf("two cases named %s", c.Name)
		}
		seen[c.Name] = true
		if c.mutate == nil || (c.Version != 1 && c.Version != 2) {
			t.Fatalf("case %s is incomplete", c.Name)
		}
	}
	if len(seen) < 100 {
		t.Fatalf("only %d cases", len(seen))
	}
}
