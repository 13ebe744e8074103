package kdf

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"reflect"
	"time"

	"github.com/awnumar/memguard"
)

// PBKDF2 bounds. cryptsetup writes at least 1000 iterations; a reader accepts
// fewer (the volume's owner chose them), but not more than MaxPBKDF2Iterations:
// 2^27 iterations of SHA-256 take about a minute on a 2024 desktop core, so a
// header asking for more is refused before any work instead of hanging.
const (
	MinPBKDF2Iterations = 1
	MaxPBKDF2Iterations = 1 << 27
	// MaxPBKDF2KeySize bounds the output length (LUKS keys are at most 64 bytes).
	MaxPBKDF2KeySize = 1024
	// pbkdf2CheckEvery is how many HMAC iterations run between two checks of
	// the context, so a cancelled derivation stops within milliseconds.
	pbkdf2CheckEvery = 4096
)

// PBKDF2 is PBKDF2 (RFC 8018 §5.2) with HMAC over the hash named Hash.
type PBKDF2 struct {
	Hash       string // a name Hash knows: "sha256", "sha1", …
	Iterations uint32
}

func (p PBKDF2) String() string {
	return fmt.Sprintf("pbkdf2-%s iterations=%d", p.Hash, p.Iterations)
}

// CostError says which parameter of a key derivation is out of bounds. It is
// returned before any work is done.
type CostError struct {
	KDF    string // "pbkdf2", "argon2i", "argon2id"
	Field  string // "iterations", "memory", "threads", "work", "key size", "salt"
	Value  uint64
	Reason string
}

func (e *CostError) Error() string {
	return fmt.Sprintf("%s %s %d %s", e.KDF, e.Field, e.Value, e.Reason)
}

// ErrUnknownHash is returned (wrapped) for a hash name Hash does not know.
var ErrUnknownHash = errors.New("unknown hash")

// newHash is Hash with ErrUnknownHash in the error chain.
func newHash(name string) (func() hash.Hash, error) {
	h, err := Hash(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownHash, err)
	}
	return h, nil
}

// Validate checks p against the bounds above and that its hash is known.
func (p PBKDF2) Validate() error {
	if _, err := newHash(p.Hash); err != nil {
		return err
	}
	switch {
	case p.Iterations < MinPBKDF2Iterations:
		return &CostError{"pbkdf2", "iterations", uint64(p.Iterations), fmt.Sprintf("is below the minimum %d", MinPBKDF2Iterations)}
	case p.Iterations > MaxPBKDF2Iterations:
		return &CostError{"pbkdf2", "iterations", uint64(p.Iterations), fmt.Sprintf("is above the maximum %d", MaxPBKDF2Iterations)}
	}
	return nil
}

// Derive returns n bytes of PBKDF2 output for secret and salt in locked memory
// owned by the caller. It refuses out-of-bound parameters before any work, and
// stops with ctx.Err() soon after ctx is cancelled.
func (p PBKDF2) Derive(ctx context.Context, secret, salt []byte, n int) (*memguard.LockedBuffer, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h, _ := newHash(p.Hash)
	return DerivePBKDF2(ctx, h, secret, salt, p.Iterations, n)
}

// DerivePBKDF2 is PBKDF2 with a hash given by its constructor, for hashes this
// package does not name (the caller bounds iterations as Validate does).
func DerivePBKDF2(ctx context.Context, h func() hash.Hash, secret, salt []byte, iterations uint32, n int) (*memguard.LockedBuffer, error) {
	if iterations < MinPBKDF2Iterations || iterations > MaxPBKDF2Iterations {
		return nil, &CostError{"pbkdf2", "iterations", uint64(iterations), "is out of bounds"}
	}
	if n < 1 || n > MaxPBKDF2KeySize {
		return nil, &CostError{"pbkdf2", "key size", uint64(max(n, 0)), fmt.Sprintf("is not within 1 to %d bytes", MaxPBKDF2KeySize)}
	}
	blocks := (n + h().Size() - 1) / h().Size()
	job := Job{
		Name:   fmt.Sprintf("pbkdf2 prf=%x i=%d n=%d", reflect.ValueOf(h).Pointer(), iterations, n),
		Salt:   salt,
		Secret: secret,
		// One unit of work per PRF iteration per output block: a few
		// hash compressions, no more than Argon2 spends on a 1 KiB block.
		Work: Work(iterations) * Work(blocks),
	}
	return Run(ctx, job, func(ctx context.Context) (*memguard.LockedBuffer, error) {
		out := memguard.NewBuffer(n)
		if err := pbkdf2Key(ctx, h, secret, salt, iterations, out.Bytes()); err != nil {
			out.Destroy()
			return nil, err
		}
		return out, nil
	})
}

// pbkdf2Key writes the PBKDF2 output into out (RFC 8018 §5.2: T_i = U_1 ^ … ^ U_c,
// U_1 = PRF(P, S || INT(i)), U_j = PRF(P, U_{j-1})).
func pbkdf2Key(ctx context.Context, h func() hash.Hash, secret, salt []byte, iterations uint32, out []byte) error {
	prf := hmac.New(h, secret)
	size := prf.Size()
	u := make([]byte, 0, size)
	t := make([]byte, size)
	defer func() { clear(u[:cap(u)]); clear(t) }()
	var index [4]byte
	for block := uint32(1); len(out) > 0; block++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		prf.Reset()
		prf.Write(salt)
		binary.BigEndian.PutUint32(index[:], block)
		prf.Write(index[:])
		u = prf.Sum(u[:0])
		copy(t, u)
		for i := uint32(1); i < iterations; i++ {
			if i%pbkdf2CheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for j := range t {
				t[j] ^= u[j]
			}
		}
		out = out[copy(out, t):]
	}
	return nil
}

// CalibratePBKDF2 returns the iteration count that makes one n-byte PBKDF2
// derivation with hash take about target on this machine: it times growing
// runs until one lasts 50 ms and scales, never below 1000 (cryptsetup's own
// floor) nor above MaxPBKDF2Iterations.
func CalibratePBKDF2(hashName string, target time.Duration, n int) (PBKDF2, error) {
	h, err := newHash(hashName)
	if err != nil {
		return PBKDF2{}, err
	}
	if target <= 0 {
		return PBKDF2{}, fmt.Errorf("target time %v is not positive", target)
	}
	out := make([]byte, max(n, 1))
	defer clear(out)
	salt := make([]byte, 32)
	for iter := uint32(1 << 10); ; iter *= 2 {
		start := time.Now()
		pbkdf2Key(context.Background(), h, []byte("cryptvol calibration"), salt, iter, out)
		d := time.Since(start)
		if d >= 50*time.Millisecond || iter >= MaxPBKDF2Iterations {
			it := math.Round(float64(iter) * float64(target) / float64(max(d, time.Microsecond)))
			return PBKDF2{Hash: hashName, Iterations: uint32(min(max(it, 1000), MaxPBKDF2Iterations))}, nil
		}
	}
}
