package cipher

import (
	"errors"
	"fmt"
	"slices"
)

const (
	// KeySize is the XTS-AES-256 key size: the data key (32 bytes) followed by the
	// tweak key (32 bytes).
	KeySize = 64

	// StateSize is the size of the memory New needs for expanded round keys.
	StateSize = 1024

	// BlockSize is the AES block size; sector sizes are multiples of it.
	BlockSize = 16
)

// XTS encrypts and decrypts whole sectors of one fixed size with XTS-AES-256.
// It is safe for concurrent use: it holds no mutable state after New.
type XTS struct {
	sectorSize int
	impl       *implementation
	blocks     blockCiphers // expanded keys, in the caller's state memory or held by impl
}

// implementation is one code path: the portable one, AES-NI, VAES.
type implementation struct {
	name string
	// available reports whether this CPU can run it, and needs says what
	// it takes, for messages when it cannot.
	available func() bool
	needs     string
	// setup expands key into state and returns the block ciphers to use.
	setup func(key, state []byte) (blockCiphers, error)
	// encrypt and decrypt process len(src)/sectorSize sectors starting at sector.
	encrypt, decrypt func(b blockCiphers, dst, src []byte, sectorSize int, sector uint64)
}

// blockCiphers is the opaque per-key state of an implementation.
type blockCiphers interface{}

// implementations lists every implementation compiled in, preferred first;
// platform files register theirs in init.
var implementations = []*implementation{genericImpl}

// Implementations returns the names of the implementations this CPU can run,
// preferred first: the fastest, unless it slows the rest of the machine (see
// the package documentation). The first one is what New selects.
func Implementations() []string {
	var names []string
	for _, im := range implementations {
		if im.available() {
			names = append(names, im.name)
		}
	}
	return names
}

// ErrKeySize is returned for a key that is not KeySize bytes.
var ErrKeySize = errors.New("cryptvol/cipher: key must be 64 bytes")

// ErrWeakKey is returned for a key whose two halves are equal, which XTS forbids
// (IEEE 1619-2018 §5.1, docs/FORMAT.md §6).
var ErrWeakKey = errors.New("cryptvol/cipher: xts key halves are equal")

// New returns an XTS-AES-256 cipher for sectors of sectorSize bytes (a positive
// multiple of 16), using the implementation Implementations puts first.
//
// The round keys are expanded into state, which must be StateSize bytes and must
// stay allocated and unmodified while the cipher is in use; the caller owns it
// (typically locked memory) and is the one to wipe it. key is not retained.
func New(key, state []byte, sectorSize int) (*XTS, error) {
	return NewWith(Implementations()[0], key, state, sectorSize)
}

// NewWith is New with a named implementation from Implementations, for tests and
// benchmarks that compare them.
func NewWith(name string, key, state []byte, sectorSize int) (*XTS, error) {
	i := slices.IndexFunc(implementations, func(im *implementation) bool { return im.name == name })
	if i < 0 {
		return nil, fmt.Errorf("cryptvol/cipher: no implementation %q", name)
	}
	if !implementations[i].available() {
		return nil, fmt.Errorf("cryptvol/cipher: implementation %q is not available on this CPU: it needs %s", name, implementations[i].needs)
	}
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	if len(state) != StateSize {
		return nil, fmt.Errorf("cryptvol/cipher: state must be %d bytes, got %d", StateSize, len(state))
	}
	if sectorSize <= 0 || sectorSize%BlockSize != 0 {
		return nil, fmt.Errorf("cryptvol/cipher: sector size %d is not a positive multiple of 16", sectorSize)
	}
	if equalHalves(key) {
		return nil, ErrWeakKey
	}
	b, err := implementations[i].setup(key, state)
	if err != nil {
		return nil, err
	}
	return &XTS{sectorSize: sectorSize, impl: implementations[i], blocks: b}, nil
}

// equalHalves compares the two key halves in constant time.
func equalHalves(key []byte) bool {
	var d byte
	for i := 0; i < KeySize/2; i++ {
		d |= key[i] ^ key[i+KeySize/2]
	}
	return d == 0
}

// SectorSize returns the sector size the cipher was made for.
func (x *XTS) SectorSize() int { return x.sectorSize }

// Implementation returns the name of the implementation in use.
func (x *XTS) Implementation() string { return x.impl.name }

// Encrypt encrypts the sectors in src into dst; the first has number sector and
// the rest follow consecutively. len(src) must be a multiple of the sector size and
// len(dst) at least len(src); dst and src may be the same buffer, but must not
// otherwise overlap.
func (x *XTS) Encrypt(dst, src []byte, sector uint64) {
	x.check(dst, src, sector)
	x.impl.encrypt(x.blocks, dst[:len(src)], src, x.sectorSize, sector)
}

// Decrypt decrypts the sectors in src into dst, with the same rules as Encrypt.
func (x *XTS) Decrypt(dst, src []byte, sector uint64) {
	x.check(dst, src, sector)
	x.impl.decrypt(x.blocks, dst[:len(src)], src, x.sectorSize, sector)
}

func (x *XTS) check(dst, src []byte, sector uint64) {
	if len(src)%x.sectorSize != 0 {
		panic("cryptvol/cipher: buffer is not a whole number of sectors")
	}
	if len(dst) < len(src) {
		panic("cryptvol/cipher: output smaller than input")
	}
	if inexactOverlap(dst[:len(src)], src) {
		panic("cryptvol/cipher: invalid buffer overlap")
	}
	if n := uint64(len(src) / x.sectorSize); n > 0 && sector+n-1 < sector {
		panic("cryptvol/cipher: sector number overflows")
	}
}
