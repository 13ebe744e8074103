package whirlpool

import (
	"encoding/binary"
	"errors"
)

// MarshalBinary and UnmarshalBinary let crypto/hmac keep the state after the
// padded key instead of hashing it again for every message, which halves the
// cost of each PBKDF2 iteration.

const magic = "cvwp\x01"

const marshaledSize = len(magic) + 8*8 + BlockSize + 8 + 8

func (d *digest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, marshaledSize)
	b = append(b, magic...)
	for _, v := range d.h {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = append(b, d.buf[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.n))
	b = binary.BigEndian.AppendUint64(b, d.len)
	return b, nil
}

func (d *digest) UnmarshalBinary(b []byte) error {
	if len(b) != marshaledSize || string(b[:len(magic)]) != magic {
		return errors.New("cryptvol/kdf/whirlpool: invalid hash state")
	}
	b = b[len(magic):]
	for i := range d.h {
		d.h[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	b = b[64:]
	copy(d.buf[:], b[:BlockSize])
	n := binary.BigEndian.Uint64(b[BlockSize:])
	if n >= BlockSize {
		return errors.New("cryptvol/kdf/whirlpool: invalid hash state")
	}
	d.n = int(n)
	d.len = binary.BigEndian.Uint64(b[BlockSize+8:])
	return nil
}
