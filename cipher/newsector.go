package cipher

import (
	"crypto/sha256"
	"fmt"
)

// NewSector returns the Sector for spec with key, for sectors of sectorSize
// bytes (a positive multiple of 16).
//
// XTS-AES-256 with a 64-bit sector number ("aes-xts-plain64", a 64-byte key)
// is the fast path: the *XTS of New. Every other spec runs on the generic code
// of this package over the block ciphers of its sub-packages.
//
// A cascade of n ciphers (Spec.Ciphers c1..cn, c1 applied first when
// encrypting) takes its key as VeraCrypt and TrueCrypt lay it out: the n data
// keys in cipher order, then the n tweak keys in the same order, each
// KeySize/(2n) bytes; cipher ci is XTS under data key i and tweak key i, and
// encrypts what c(i-1) produced, over the whole buffer with the same sector
// numbers. (VeraCrypt names a cascade the other way round: its
// "AES-Twofish-Serpent" applies Serpent first; see VeraCryptSpec.)
//
// The round keys go into state, which must be spec.StateSize() bytes and stay
// allocated and unmodified while the Sector is in use; the caller owns it
// (typically locked memory) and is the one to wipe it. AES other than
// XTS-AES-256 on amd64 keeps its round keys on the Go heap instead, in
// crypto/aes (SECURITY.md). key is not retained.
//
// An XTS key whose data and tweak halves are equal is refused with
// ErrWeakKey, per cipher of a cascade.
func NewSector(spec Spec, key, state []byte, sectorSize int) (Sector, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(key) != spec.KeySize {
		return nil, fmt.Errorf("cryptvol/cipher: %s needs a %d-byte key, got %d", spec, spec.KeySize, len(key))
	}
	if want := spec.StateSize(); len(state) != want {
		return nil, fmt.Errorf("cryptvol/cipher: state for %s must be %d bytes, got %d", spec, want, len(state))
	}
	if sectorSize <= 0 || sectorSize%BlockSize != 0 {
		return nil, fmt.Errorf("cryptvol/cipher: sector size %d is not a positive multiple of 16", sectorSize)
	}
	var s Sector
	var err error
	if spec.Mode == "cbc" {
		s, err = newCBC(spec, key, state, sectorSize)
	} else {
		s, err = newXTS(spec, key, state, sectorSize)
	}
	if err != nil {
		return nil, err
	}
	if spec.IV == "plain" {
		s = &plain32{inner: s}
	}
	return s, nil
}

func newXTS(spec Spec, key, state []byte, sectorSize int) (Sector, error) {
	n := len(spec.Ciphers)
	half := spec.KeySize / 2 // all data keys, then all tweak keys
	per := half / n
	var layers []Sector
	for i, name := range spec.Ciphers {
		data, tweak := key[i*per:(i+1)*per], key[half+i*per:half+(i+1)*per]
		size := layerStateSize(name, "xts", 2*per)
		l, err := newXTSLayer(name, data, tweak, state[:size], sectorSize)
		if err != nil {
			return nil, err
		}
		state = state[size:]
		layers = append(layers, l)
	}
	if n == 1 {
		return layers[0], nil
	}
	return &cascade{layers: layers, sectorSize: sectorSize}, nil
}

// newXTSLayer makes one cipher's XTS: the fast path for AES-256, the generic
// mode otherwise.
func newXTSLayer(name string, data, tweak, state []byte, sectorSize int) (Sector, error) {
	if subtleEqual(data, tweak) {
		return nil, ErrWeakKey
	}
	if name == "aes" && len(data) == 32 {
		var k [KeySize]byte
		copy(k[:], data)
		copy(k[32:], tweak)
		x, err := New(k[:], state, sectorSize)
		clear(k[:])
		return x, err
	}
	d, _ := lookupBlock(name)
	dataBlock, err := d.new(data, state[:d.stateSize])
	if err != nil {
		return nil, err
	}
	tweakBlock, err := d.new(tweak, state[d.stateSize:2*d.stateSize])
	if err != nil {
		return nil, err
	}
	return &xtsBlocks{name: "xts(" + name + ")", data: dataBlock, tweak: tweakBlock, sectorSize: sectorSize}, nil
}

func newCBC(spec Spec, key, state []byte, sectorSize int) (Sector, error) {
	d, _ := lookupBlock(spec.Ciphers[0])
	b, err := d.new(key, state[:d.stateSize])
	if err != nil {
		return nil, err
	}
	c := &cbcSector{name: "cbc-" + spec.IV + "(" + d.name + ")", block: b, sectorSize: sectorSize}
	if spec.IV == "essiv:sha256" {
		salt := sha256.Sum256(key)
		c.essiv, err = d.new(salt[:], state[d.stateSize:2*d.stateSize])
		clear(salt[:])
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// subtleEqual compares two keys in constant time.
func subtleEqual(a, b []byte) bool {
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0 && len(a) == len(b)
}
