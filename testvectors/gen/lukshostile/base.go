package lukshostile

import (
	"context"
	"crypto/aes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/crypto/xts"

	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// The bases: small volumes with the cheapest derivations, so that a case
// that opens costs milliseconds.
const (
	basePassphrase = "hostile base passphrase"

	// LUKS1: cryptsetup's layout for a 32-byte key (AES-128-XTS): keyslot
	// areas of 250 sectors every 256 from sector 8, data at 2 MiB.
	base1KeyBytes   = 32
	base1Iterations = 1000
	base1Payload    = 4096 // sectors
	base1Size       = base1Payload*512 + 64<<10

	// LUKS2: 16 KiB metadata copies, data at 5 MiB (room for 39 keyslot
	// areas of a 32-byte key), 4096-byte sectors.
	base2HdrSize    = 0x4000
	base2DataOffset = 5 << 20
	base2Size       = base2DataOffset + 64<<10
	base2AreaSize   = 131072 // a 32-byte key's 128000 bytes of split material, rounded to 4096
)

// MakeBase1 writes a healthy LUKS1 volume to path: aes-xts-plain64 with a
// 256-bit key, sha256, keyslot 0 active with 1000 PBKDF2 iterations. It is
// written from the specification here, independently of package luks.
func MakeBase1(path string) (Base, error) {
	b := Base{Path: path, Version: 1, Passphrase: []byte(basePassphrase), VolumeKey: make([]byte, base1KeyBytes), Size: base1Size}
	rand.Read(b.VolumeKey)
	h := make([]byte, 592)
	copy(h, "LUKS\xba\xbe")
	binary.BigEndian.PutUint16(h[6:], 1)
	copy(h[8:], "aes")
	copy(h[40:], "xts-plain64")
	copy(h[72:], "sha256")
	binary.BigEndian.PutUint32(h[104:], base1Payload)
	binary.BigEndian.PutUint32(h[108:], base1KeyBytes)
	mkSalt := h[132:164]
	rand.Read(mkSalt)
	digest, err := pbkdf2.Key(sha256.New, string(b.VolumeKey), mkSalt, base1Iterations, 20)
	if err != nil {
		return Base{}, err
	}
	copy(h[112:132], digest)
	binary.BigEndian.PutUint32(h[164:], base1Iterations)
	copy(h[168:], "5c4a4e2b-2b0e-4d6c-9f3a-hostile00001")
	for i := 0; i < 8; i++ {
		s := h[208+48*i:]
		binary.BigEndian.PutUint32(s[0:], 0x0000DEAD)
		binary.BigEndian.PutUint32(s[40:], uint32(8+256*i))
		binary.BigEndian.PutUint32(s[44:], 4000)
	}
	s0 := h[208:]
	binary.BigEndian.PutUint32(s0[0:], 0x00AC71F3)
	binary.BigEndian.PutUint32(s0[4:], base1Iterations)
	rand.Read(s0[8:40])
	kek, err := pbkdf2.Key(sha256.New, basePassphrase, s0[8:40], base1Iterations, base1KeyBytes)
	if err != nil {
		return Base{}, err
	}
	material := make([]byte, 250*512)
	if err := split(material, b.VolumeKey); err != nil {
		return Base{}, err
	}
	c, err := xts.NewCipher(aes.NewCipher, kek)
	if err != nil {
		return Base{}, err
	}
	for i := 0; i < len(material)/512; i++ {
		c.Encrypt(material[i*512:(i+1)*512], material[i*512:(i+1)*512], uint64(i))
	}
	f, err := os.Create(path)
	if err != nil {
		return Base{}, err
	}
	defer f.Close()
	if _, err := f.WriteAt(h, 0); err != nil {
		return Base{}, err
	}
	if _, err := f.WriteAt(material, 8*512); err != nil {
		return Base{}, err
	}
	if err := f.Truncate(base1Size); err != nil {
		return Base{}, err
	}
	return b, f.Close()
}

// split is the LUKS anti-forensic split of key into 4000 stripes with
// SHA-256 (the LUKS1 specification, section 2.4).
func split(dst, key []byte) error {
	n := len(key)
	if _, err := rand.Read(dst[:3999*n]); err != nil {
		return err
	}
	d := make([]byte, n)
	for i := 0; i < 3999; i++ {
		for j := range d {
			d[j] ^= dst[i*n+j]
		}
		diffuse(d)
	}
	for j := range d {
		dst[3999*n+j] = d[j] ^ key[j]
	}
	return nil
}

func diffuse(d []byte) {
	var out []byte
	for i := 0; i*32 < len(d); i++ {
		block := d[i*32 : min(len(d), (i+1)*32)]
		h := sha256.New()
		binary.Write(h, binary.BigEndian, uint32(i))
		h.Write(block)
		out = append(out, h.Sum(nil)[:len(block)]...)
	}
	copy(d, out)
}

// MakeBase2 writes a healthy LUKS2 volume to path with luks.Create:
// aes-xts-plain64 with a 256-bit key, 4096-byte sectors, data at 5 MiB,
// keyslot 0 with 1000 PBKDF2-SHA256 iterations, the unused keyslots area
// zeroed (so copies of it are sparse).
func MakeBase2(path string) (Base, error) {
	f, err := os.Create(path)
	if err != nil {
		return Base{}, err
	}
	defer f.Close()
	if err := f.Truncate(base2Size); err != nil {
		return Base{}, err
	}
	_, vk, err := luks.Create(context.Background(), f, base2Size, []byte(basePassphrase), luks.CreateOptions{
		Key:     luks.NewKey{PBKDF2: kdf.PBKDF2{Hash: "sha256", Iterations: base1Iterations}},
		KeySize: 32, DataOffset: base2DataOffset, DigestIterations: base1Iterations,
		UUID: "7d2f3a61-0c4e-4b8e-a1d2-hostile00002", Label: "hostile base",
	})
	if err != nil {
		return Base{}, err
	}
	defer vk.Destroy()
	zero := make([]byte, base2DataOffset-2*base2HdrSize-base2AreaSize)
	if _, err := f.WriteAt(zero, 2*base2HdrSize+base2AreaSize); err != nil {
		return Base{}, err
	}
	b := Base{Path: path, Version: 2, Passphrase: []byte(basePassphrase), VolumeKey: append([]byte(nil), vk.Bytes()...), Size: base2Size}
	if len(b.VolumeKey) != 32 {
		return Base{}, fmt.Errorf("created a %d-byte volume key", len(b.VolumeKey))
	}
	return b, f.Close()
}
