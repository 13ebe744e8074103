// Command goldenvaults writes the golden version 1 vaults of testvectors/vaults:
// small vaults with known passphrases and known content, built directly from
// docs/FORMAT.md with packages header, kdf and cipher (not through container), so
// that container's reader is checked against an independent writer. Existing
// files are never overwritten: a golden vault is made once and kept forever, so
// a format change that breaks old vaults fails the tests.
//
//	go run ./testvectors/gen/goldenvaults -out testvectors/vaults
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
)

// Vault describes one golden vault in vaults.json.
type Vault struct {
	File        string            `json:"file"`
	Description string            `json:"description"`
	UUID        string            `json:"uuid"`
	SectorSize  uint32            `json:"sector_size"`
	DataSize    uint64            `json:"data_size"`
	Passphrases map[string]string `json:"passphrases"` // slot number -> passphrase
	// Keyfiles holds, for the slots that need them, the contents of each
	// keyfile (hex), in the order they were given (docs/FORMAT.md §4.1).
	Keyfiles map[string][]string `json:"keyfiles,omitempty"`
	Content  string              `json:"content"`
	SHA256   string              `json:"plaintext_sha256"`
}

type slotSpec struct {
	slot       int
	passphrase string
	keyfiles   []string // contents
	params     kdf.Params
	aead       header.AEAD
}

func main() {
	out := flag.String("out", "testvectors/vaults", "directory of the golden vaults")
	flag.Parse()
	specs := []struct {
		file, desc string
		sectorSize uint32
		dataSize   uint64
		slots      []slotSpec
	}{
		{"v1-4096.cv.gz", "sector size 4096, one xchacha20-poly1305 slot", 4096, 8192,
			[]slotSpec{{0, "golden passphrase one", nil, kdf.Params{Memory: 8192, Iterations: 1, Threads: 1}, header.XChaCha20Poly1305}}},
		{"v1-512-two-slots.cv.gz", "sector size 512, slot 0 aes-256-gcm, slot 3 xchacha20-poly1305 with p=2 t=2", 512, 4096,
			[]slotSpec{
				{0, "gcm slot passphrase", nil, kdf.Params{Memory: 8192, Iterations: 1, Threads: 1}, header.AESGCM},
				{3, "pässphrase ünicode 🔑", nil, kdf.Params{Memory: 8192, Iterations: 2, Threads: 2}, header.XChaCha20Poly1305},
			}},
		{"v1-4096-keyfiles.cv.gz", "sector size 4096, slot 0 passphrase and two keyfiles, slot 1 one keyfile only", 4096, 4096,
			[]slotSpec{
				{0, "with keyfiles", []string{"first keyfile\n", "second keyfile, binary \x00\x01\xff"}, kdf.Params{Memory: 8192, Iterations: 1, Threads: 1}, header.XChaCha20Poly1305},
				{1, "", []string{"the only keyfile"}, kdf.Params{Memory: 8192, Iterations: 1, Threads: 1}, header.XChaCha20Poly1305},
			}},
	}
	var manifest []Vault
	mpath := filepath.Join(*out, "vaults.json")
	if b, err := os.ReadFile(mpath); err == nil {
		if err := json.Unmarshal(b, &manifest); err != nil {
			log.Fatal(err)
		}
	}
	for _, s := range specs {
		path := filepath.Join(*out, s.file)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		v, gz, err := build(s.sectorSize, s.dataSize, s.slots)
		if err != nil {
			log.Fatal(err)
		}
		v.File, v.Description = s.file, s.desc
		if err := os.WriteFile(path, gz, 0o644); err != nil {
			log.Fatal(err)
		}
		manifest = append(manifest, v)
		fmt.Printf("wrote %s (%d bytes)\n", path, len(gz))
	}
	b, _ := json.MarshalIndent(manifest, "", "  ")
	if err := os.WriteFile(mpath, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

// pattern is the golden plaintext: byte i is (i*131 + i/4096) mod 256.
func pattern(n uint64) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(uint64(i)*131 + uint64(i)/4096)
	}
	return p
}

func build(sectorSize uint32, dataSize uint64, slots []slotSpec) (Vault, []byte, error) {
	mk := make([]byte, header.MasterKeySize)
	rand.Read(mk)
	h := &header.Header{Sequence: 1, Cipher: header.CipherAESXTSPlain64, SectorSize: sectorSize,
		DataOffset: header.DataAlignment, DataSize: dataSize}
	rand.Read(h.UUID[:])
	h.UUID[6] = h.UUID[6]&0x0f | 0x40
	h.UUID[8] = h.UUID[8]&0x3f | 0x80
	v := Vault{UUID: hex.EncodeToString(h.UUID[:]), SectorSize: sectorSize, DataSize: dataSize,
		Passphrases: map[string]string{}, Content: "byte i of the plaintext is (i*131 + i/4096) mod 256"}
	for _, s := range slots {
		slot, err := header.NewSlot(s.params.Memory, s.params.Iterations, s.params.Threads, s.aead)
		if err != nil {
			return v, nil, err
		}
		var digests [][32]byte
		for _, k := range s.keyfiles {
			digests = append(digests, sha256.Sum256([]byte(k)))
			if v.Keyfiles == nil {
				v.Keyfiles = map[string][]string{}
			}
			v.Keyfiles[fmt.Sprint(s.slot)] = append(v.Keyfiles[fmt.Sprint(s.slot)], hex.EncodeToString([]byte(k)))
		}
		secret, err := kdf.Secret([]byte(s.passphrase), digests)
		if err != nil {
			return v, nil, err
		}
		kek, err := kdf.Derive(context.Background(), secret, slot.Salt[:], s.params)
		if err != nil {
			return v, nil, err
		}
		if err := slot.Wrap(kek.Bytes(), mk, h.UUID); err != nil {
			return v, nil, err
		}
		kek.Destroy()
		h.Slots[s.slot] = slot
		v.Passphrases[fmt.Sprint(s.slot)] = s.passphrase
	}
	mac := make([]byte, header.MACKeySize)
	if err := header.MACKey(mac, mk, h.UUID); err != nil {
		return v, nil, err
	}
	h.Seal(mac)
	raw := h.Encode()

	plain := pattern(dataSize)
	sum := sha256.Sum256(plain)
	v.SHA256 = hex.EncodeToString(sum[:])
	x, err := cipher.New(mk, make([]byte, cipher.StateSize), int(sectorSize))
	if err != nil {
		return v, nil, err
	}
	data := make([]byte, dataSize)
	x.Encrypt(data, plain, 0)

	file := make([]byte, h.FileSize())
	copy(file, raw)
	copy(file[h.DataOffset:], data)
	copy(file[h.BackupOffset():], raw)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(file)
	zw.Close()
	return v, buf.Bytes(), nil
}
