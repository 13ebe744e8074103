package streebog

import (
	"encoding/binary"
	"errors"
)

// MarshalBinary and UnmarshalBinary let crypto/hmac keep the state after the
// padded key instead of hashing it again for every message, which halves the
// cost of each PBKDF2 iteration.

const magic = "cvsb\x01"

const marshaledSize = len(magic) + 8 + 3*64 + BlockSize + 8

func (d *digest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, marshaledSize)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(d.size))
	for _, a := range []*[8]uint64{&d.h, &d.n, &d.sum} {
		for _, v := range a {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	b = append(b, d.buf[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(d.nbuf))
	return b, nil
}

func (d *digest) UnmarshalBinary(b []byte) error {
	if len(b) != marshaledSize || string(b[:len(magic)]) != magic {
		return errors.New("cryptvol/kdf/streebog: invalid hash state")
	}
	b = b[len(magic):]
	if size := binary.LittleEndian.Uint64(b); size != uint64(d.size) {
		return errors.New("cryptvol/kdf/streebog: hash state of another digest size")
	}
	b = b[8:]
	for _, a := range []*[8]uint64{&d.h, &d.n, &d.sum} {
		for i := range a {
			a[i] = binary.LittleEndian.Uint64(b)
			b = b[8:]
		}
	}
	copy(d.buf[:], b[:BlockSize])
	n := binary.LittleEndian.Uint64(b[BlockSize:])
	if n >= BlockSize {
		return errors.New("cryptvol/kdf/streebog: invalid hash state")
	}
	d.nbuf = int(n)
	return nil
}
