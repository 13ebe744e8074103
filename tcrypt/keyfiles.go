package tcrypt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Passphrase and keyfile pool limits (docs/VERACRYPT.md, "Keyfiles").
const (
	// MaxPassword is the longest passphrase VeraCrypt 1.26 takes; older
	// VeraCrypt and TrueCrypt took at most maxLegacyPassword bytes.
	MaxPassword       = 128
	maxLegacyPassword = 64
	// KeyfileReadLimit is how much of a keyfile counts: its first MiB.
	KeyfileReadLimit = 1 << 20
)

// ErrPasswordTooLong is a passphrase longer than the format takes.
var ErrPasswordTooLong = errors.New("passphrase too long")

// Password combines a passphrase with the contents of keyfiles the way
// VeraCrypt and TrueCrypt do, and returns what the key derivation takes (the
// caller wipes it). Without keyfiles it is a copy of the passphrase.
//
// With keyfiles, a pool of 64 bytes (128 for a VeraCrypt passphrase longer
// than 64 bytes) starts at zero; for each keyfile, a CRC-32 runs over its
// first MiB, and after each byte the four bytes of the CRC register, most
// significant first, are added (mod 256) into the pool at a position that
// starts at 0 for each keyfile and wraps around the pool. The pool is then
// added byte by byte to the passphrase, padded with zeros to the pool's
// size. Keyfiles add up: their order does not matter.
func Password(f Format, passphrase []byte, keyfiles []io.Reader) ([]byte, error) {
	limit := MaxPassword
	if f == TrueCrypt {
		limit = maxLegacyPassword
	}
	if len(passphrase) > limit {
		return nil, fmt.Errorf("%w: %d bytes, %s takes at most %d", ErrPasswordTooLong, len(passphrase), f, limit)
	}
	if len(keyfiles) == 0 {
		return append([]byte(nil), passphrase...), nil
	}
	poolSize := maxLegacyPassword
	if len(passphrase) > maxLegacyPassword {
		poolSize = MaxPassword
	}
	pool := make([]byte, poolSize)
	buf := make([]byte, 64<<10)
	defer clear(buf)
	for i, r := range keyfiles {
		if err := mixKeyfile(pool, r, buf); err != nil {
			clear(pool)
			return nil, fmt.Errorf("keyfile %d: %w", i+1, err)
		}
	}
	for i := range passphrase {
		pool[i] += passphrase[i]
	}
	return pool, nil
}

var crcTable = crc32.MakeTable(crc32.IEEE)

// mixKeyfile adds one keyfile into the pool.
func mixKeyfile(pool []byte, r io.Reader, buf []byte) error {
	crc := ^uint32(0)
	pos, total := 0, 0
	defer func() { crc = 0 }()
	for total < KeyfileReadLimit {
		n, err := r.Read(buf[:min(len(buf), KeyfileReadLimit-total)])
		for _, b := range buf[:n] {
			// The raw CRC register, before the final inversion, as
			// VeraCrypt's UPDC32 leaves it.
			crc = crcTable[byte(crc)^b] ^ crc>>8
			pool[pos] += byte(crc >> 24)
			pool[pos+1] += byte(crc >> 16)
			pool[pos+2] += byte(crc >> 8)
			pool[pos+3] += byte(crc)
			pos += 4
			if pos >= len(pool) {
				pos = 0
			}
		}
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return nil
}
