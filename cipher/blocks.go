package cipher

import (
	"crypto/aes"
	"fmt"
	"unsafe"

	"golang.org/x/crypto/twofish"

	"github.com/cryptvol/cryptvol/cipher/camellia"
	"github.com/cryptvol/cryptvol/cipher/internal/keymem"
	"github.com/cryptvol/cryptvol/cipher/kuznyechik"
	"github.com/cryptvol/cryptvol/cipher/serpent"
)

// blockCipher is a 128-bit block cipher under one key, as crypto/cipher.Block
// without BlockSize.
type blockCipher interface {
	Encrypt(dst, src []byte)
	Decrypt(dst, src []byte)
}

// blockDef describes one block cipher the generic modes can run.
type blockDef struct {
	name     string
	keySizes []int
	// stateSize is the caller memory one key's schedule needs; 0 where the
	// schedule lives on the Go heap (crypto/aes).
	stateSize int
	new       func(key, state []byte) (blockCipher, error)
}

// blockDefs lists the block ciphers, one table for every spec, benchmark and
// document (see doc.go and SECURITY.md for where each keeps its round keys).
var blockDefs = []blockDef{
	{name: "aes", keySizes: []int{16, 24, 32}, new: newAES},
	{name: "serpent", keySizes: []int{16, 24, 32}, stateSize: serpent.StateSize,
		new: func(key, state []byte) (blockCipher, error) { return serpent.New(key, state) }},
	{name: "twofish", keySizes: []int{16, 24, 32}, stateSize: twofishStateSize, new: newTwofish},
	{name: "camellia", keySizes: []int{16, 24, 32}, stateSize: camellia.StateSize,
		new: func(key, state []byte) (blockCipher, error) { return camellia.New(key, state) }},
	{name: "kuznyechik", keySizes: []int{32}, stateSize: kuznyechik.StateSize,
		new: func(key, state []byte) (blockCipher, error) { return kuznyechik.New(key, state) }},
}

func lookupBlock(name string) (*blockDef, bool) {
	for i := range blockDefs {
		if blockDefs[i].name == name {
			return &blockDefs[i], true
		}
	}
	return nil, false
}

// newAES is the portable AES for every case the fast path does not cover
// (AES-128 and AES-192 XTS, CBC, ESSIV). crypto/aes keeps its round keys on
// the Go heap; state is unused (SECURITY.md says so).
func newAES(key, _ []byte) (blockCipher, error) { return aes.NewCipher(key) }

// twofishStateSize fits a golang.org/x/crypto/twofish.Cipher, a plain struct
// of uint32 tables with no pointers, at a keymem boundary.
const twofishStateSize = int(unsafe.Sizeof(twofish.Cipher{})) + keymem.Align - 1

// newTwofish expands the key with golang.org/x/crypto/twofish, which builds
// its key-dependent tables on the Go heap, then moves them into the caller's
// state and zeroes the heap copy, so that only the state holds them while the
// cipher is in use. (Transient copies on the stack of twofish.NewCipher are
// not wiped; SECURITY.md says so.)
func newTwofish(key, state []byte) (blockCipher, error) {
	words, err := keymem.Uint32s(state, int(unsafe.Sizeof(twofish.Cipher{}))/4)
	if err != nil {
		return nil, err
	}
	c, err := twofish.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cryptvol/cipher: %w", err)
	}
	placed := (*twofish.Cipher)(unsafe.Pointer(unsafe.SliceData(words)))
	*placed = *c
	*c = twofish.Cipher{}
	return placed, nil
}
