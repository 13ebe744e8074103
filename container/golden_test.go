package container

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/kdf"
)

type goldenVault struct {
	File        string              `json:"file"`
	UUID        string              `json:"uuid"`
	SectorSize  int                 `json:"sector_size"`
	DataSize    int64               `json:"data_size"`
	Passphrases map[string]string   `json:"passphrases"`
	Keyfiles    map[string][]string `json:"keyfiles"`
	SHA256      string              `json:"plaintext_sha256"`
}

// TestGoldenVaults opens every vault made by testvectors/gen/goldenvaults (an
// independent writer of docs/FORMAT.md) with each known passphrase and checks
// its geometry and plaintext. A format change that breaks existing vaults fails
// here.
func TestGoldenVaults(t *testing.T) {
	dir := filepath.Join("..", "testvectors", "vaults")
	b, err := os.ReadFile(filepath.Join(dir, "vaults.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vaults []goldenVault
	if err := json.Unmarshal(b, &vaults); err != nil {
		t.Fatal(err)
	}
	if len(vaults) < 2 {
		t.Fatalf("only %d golden vaults", len(vaults))
	}
	for _, g := range vaults {
		t.Run(g.File, func(t *testing.T) {
			path := gunzipTo(t, filepath.Join(dir, g.File))
			info, err := Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ReplaceAll(info.UUID, "-", "") != g.UUID || info.Geometry.SectorSize != g.SectorSize ||
				info.Geometry.Size != g.DataSize || info.Primary.Problem != "" || info.Backup.Problem != "" {
				t.Fatalf("header %+v does not match the manifest %+v", info, g)
			}
			for slot, passphrase := range g.Passphrases {
				want, _ := strconv.Atoi(slot)
				var digests [][32]byte
				for _, k := range g.Keyfiles[slot] {
					b, _ := hex.DecodeString(k)
					digests = append(digests, sha256.Sum256(b))
				}
				slices.Reverse(digests) // any order opens
				secret, err := kdf.Secret([]byte(passphrase), digests)
				if err != nil {
					t.Fatal(err)
				}
				pass := string(secret)
				if len(digests) > 0 && opens(t, path, passphrase) {
					t.Fatalf("slot %s opens without its keyfiles", slot)
				}
				vol, err := Open(path, Passphrase([]byte(pass)), &OpenOptions{ReadOnly: true})
				if err != nil {
					t.Fatalf("slot %s: %v", slot, err)
				}
				p := make([]byte, vol.Size())
				if _, err := vol.ReadAt(p, 0); err != nil {
					t.Fatal(err)
				}
				vol.Close()
				if sum := sha256.Sum256(p); hex.EncodeToString(sum[:]) != g.SHA256 {
					t.Fatalf("slot %s: plaintext differs", slot)
				}
				v, err := Unlock(path, Passphrase([]byte(pass)), &UnlockOptions{ReadOnly: true})
				if err != nil || v.Slot() != want {
					t.Fatalf("passphrase of slot %s opened slot %d (%v)", slot, v.Slot(), err)
				}
				v.Close()
			}
			if opens(t, path, "not the passphrase") {
				t.Fatal("a wrong passphrase opens a golden vault")
			}
		})
	}
}

func gunzipTo(t testing.TB, gz string) string {
	t.Helper()
	f, err := os.Open(gz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "golden.cv")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	return path
}
