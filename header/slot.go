package header

import (
	"crypto/aes"
	stdcipher "crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"
)

// KDF and AEAD identifiers of docs/FORMAT.md §4.
const (
	KDFArgon2id = 1

	SaltSize       = 32
	nonceField     = 24
	wrappedKeySize = MasterKeySize + 16
)

// AEAD identifies the keyslot wrapping algorithm.
type AEAD uint16

const (
	AESGCM            AEAD = 1
	XChaCha20Poly1305 AEAD = 2
)

func (a AEAD) String() string {
	switch a {
	case AESGCM:
		return "aes-256-gcm"
	case XChaCha20Poly1305:
		return "xchacha20-poly1305"
	}
	return fmt.Sprintf("unknown-%d", uint16(a))
}

// Slot is one keyslot. The KDF parameters are carried as read; container checks
// them against the bounds of package kdf before deriving anything.
type Slot struct {
	Active     bool
	KDF        uint16
	Memory     uint32 // KiB
	Iterations uint32
	Threads    uint32
	AEAD       AEAD
	Salt       [SaltSize]byte
	Nonce      [nonceField]byte
	WrappedKey [wrappedKeySize]byte
}

func (s *Slot) decode(b []byte) error {
	be := binary.BigEndian
	switch state := be.Uint16(b[0:]); state {
	case 0:
		if !allZero(b) {
			return fieldErr("state", "inactive, but its bytes are not all zero")
		}
		*s = Slot{}
		return nil
	case 1:
	default:
		return fieldErr("state", "%d is neither 0 (inactive) nor 1 (active)", state)
	}
	*s = Slot{
		Active:     true,
		KDF:        be.Uint16(b[2:]),
		Memory:     be.Uint32(b[4:]),
		Iterations: be.Uint32(b[8:]),
		Threads:    be.Uint32(b[12:]),
		AEAD:       AEAD(be.Uint16(b[18:])),
	}
	copy(s.Salt[:], b[24:56])
	copy(s.Nonce[:], b[56:80])
	copy(s.WrappedKey[:], b[80:160])
	switch {
	case s.KDF != KDFArgon2id:
		return fieldErr("kdf", "%d is not a known key derivation function", s.KDF)
	case be.Uint16(b[16:]) != SaltSize:
		return fieldErr("salt_len", "%d, want %d", be.Uint16(b[16:]), SaltSize)
	case s.AEAD != AESGCM && s.AEAD != XChaCha20Poly1305:
		return fieldErr("aead", "%d is not a known AEAD", uint16(s.AEAD))
	case s.AEAD == AESGCM && !allZero(s.Nonce[12:]):
		return fieldErr("nonce", "aes-256-gcm uses 12 bytes, but bytes 12-23 are not zero")
	case !allZero(b[20:24]) || !allZero(b[160:]):
		return fieldErr("reserved", "not zero")
	}
	return nil
}

func (s *Slot) encode(b []byte) {
	if !s.Active {
		return // all zero
	}
	be := binary.BigEndian
	be.PutUint16(b[0:], 1)
	be.PutUint16(b[2:], s.KDF)
	be.PutUint32(b[4:], s.Memory)
	be.PutUint32(b[8:], s.Iterations)
	be.PutUint32(b[12:], s.Threads)
	be.PutUint16(b[16:], SaltSize)
	be.PutUint16(b[18:], uint16(s.AEAD))
	copy(b[24:56], s.Salt[:])
	copy(b[56:80], s.Nonce[:])
	copy(b[80:160], s.WrappedKey[:])
}

// additionalData binds a slot to its vault and to its own parameters and salt
// (docs/FORMAT.md §4).
func (s *Slot) additionalData(uuid [16]byte) []byte {
	var b [SlotSize]byte
	s.encode(b[:])
	ad := make([]byte, 0, 19+16+56)
	ad = append(ad, "cryptvol v1 keyslot"...)
	ad = append(ad, uuid[:]...)
	return append(ad, b[:56]...)
}

func (s *Slot) aead(kek []byte) (stdcipher.AEAD, []byte, error) {
	switch s.AEAD {
	case AESGCM:
		blk, err := aes.NewCipher(kek)
		if err != nil {
			return nil, nil, err
		}
		g, err := stdcipher.NewGCM(blk)
		return g, s.Nonce[:12], err
	case XChaCha20Poly1305:
		a, err := chacha20poly1305.NewX(kek)
		return a, s.Nonce[:], err
	}
	return nil, nil, fmt.Errorf("unknown aead %d", s.AEAD)
}

// NewSlot returns an active slot with the given Argon2id parameters, a fresh
// random salt, and the given AEAD. The caller derives the key-encryption key from
// s.Salt and then calls Wrap.
func NewSlot(memory, iterations, threads uint32, a AEAD) (Slot, error) {
	s := Slot{Active: true, KDF: KDFArgon2id, Memory: memory, Iterations: iterations, Threads: threads, AEAD: a}
	if _, err := rand.Read(s.Salt[:]); err != nil {
		return Slot{}, err
	}
	return s, nil
}

// Wrap seals masterKey into the slot under kek with a fresh random nonce.
func (s *Slot) Wrap(kek, masterKey []byte, uuid [16]byte) error {
	if len(masterKey) != MasterKeySize {
		return fmt.Errorf("master key is %d bytes, want %d", len(masterKey), MasterKeySize)
	}
	clear(s.Nonce[:])
	a, nonce, err := s.aead(kek)
	if err != nil {
		return err
	}
	defer wipeAEADKey(a, kek)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	a.Seal(s.WrappedKey[:0], nonce, masterKey, s.additionalData(uuid))
	return nil
}

// ErrUnwrap is returned by Unwrap when the tag does not verify: a wrong key
// (wrong passphrase), or a slot or header changed since it was written.
var ErrUnwrap = errors.New("keyslot does not open with this key")

// Unwrap opens the slot with kek and writes the master key into dst (which must
// be MasterKeySize bytes, typically locked memory). On failure dst is zeroed.
func (s *Slot) Unwrap(dst, kek []byte, uuid [16]byte) error {
	if len(dst) != MasterKeySize {
		return fmt.Errorf("master key buffer is %d bytes, want %d", len(dst), MasterKeySize)
	}
	a, nonce, err := s.aead(kek)
	if err != nil {
		clear(dst)
		return err
	}
	defer wipeAEADKey(a, kek)
	if _, err := a.Open(dst[:0], nonce, s.WrappedKey[:], s.additionalData(uuid)); err != nil {
		clear(dst)
		return ErrUnwrap
	}
	return nil
}

// wipeAEADKey overwrites the copy of key that an AEAD object keeps, where it
// can be found: golang.org/x/crypto/chacha20poly1305 keeps the key in a
// [32]byte at the start of the struct its AEAD points to, and nothing would
// ever overwrite it. The copy is wiped only if it is found there, byte for
// byte, so a change of that layout wipes nothing rather than something else
// (the tests that search memory for keys would then fail). AES-GCM's key
// schedule is copied into objects that cannot be reached, and is left
// (SECURITY.md "Limits of memory hygiene").
func wipeAEADKey(a stdcipher.AEAD, key []byte) {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().Elem().Size() < uintptr(len(key)) {
		return
	}
	p := unsafe.Slice((*byte)(v.UnsafePointer()), len(key))
	if subtle.ConstantTimeCompare(p, key) == 1 {
		clear(p)
	}
}
