package luks

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// kdfSpec is one keyslot's key derivation.
type kdfSpec struct {
	typ        string // "pbkdf2", "argon2i", "argon2id"
	hash       string
	iterations uint32
	memory     uint32
	threads    uint32
}

// derive runs the derivation, bounded before any work.
func (s kdfSpec) derive(ctx context.Context, secret, salt []byte, n int) (*memguard.LockedBuffer, error) {
	if s.typ == "pbkdf2" {
		return kdf.PBKDF2{Hash: s.hash, Iterations: s.iterations}.Derive(ctx, secret, salt, n)
	}
	return kdf.Argon2{Variant: s.typ, Memory: s.memory, Iterations: s.iterations, Threads: s.threads}.Derive(ctx, secret, salt, n)
}

// kekCache derives each distinct (derivation, salt, length) at most once per
// unlock: keyslots that share them (copied headers, hostile ones) cost one
// derivation.
type kekCache struct {
	ctx    context.Context
	secret []byte
	keys   map[string]*memguard.LockedBuffer
}

func newKEKCache(ctx context.Context, secret []byte) *kekCache {
	return &kekCache{ctx: ctx, secret: secret, keys: map[string]*memguard.LockedBuffer{}}
}

func (c *kekCache) derive(s kdfSpec, salt []byte, n int) (*memguard.LockedBuffer, error) {
	id := fmt.Sprintf("%s|%s|%d|%d|%d|%x|%d", s.typ, s.hash, s.iterations, s.memory, s.threads, salt, n)
	if k, ok := c.keys[id]; ok {
		return k, nil
	}
	if err := c.ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.derive(c.ctx, c.secret, salt, n)
	if err != nil {
		return nil, err
	}
	c.keys[id] = k
	return k, nil
}

func (c *kekCache) destroy() {
	for _, k := range c.keys {
		k.Destroy()
	}
}

// keyslotTry is what an unlock needs to try one keyslot.
type keyslotTry struct {
	slot       int
	kdf        kdfSpec
	salt       []byte
	kekSize    int    // derived key size
	areaOff    uint64 // key material on the header device
	areaCipher string
	afHash     string
	keySize    int                                        // volume key size
	verify     func(ctx context.Context, vk []byte) error // nil if vk is the volume key
	problem    error                                      // set: the slot cannot be tried
}

// errDigestMismatch is what verify returns for a key that is not the volume's.
var errDigestMismatch = errors.New("digest mismatch")

// openSlots tries the keyslots in order and returns the volume key of the
// first one secret opens. A keyslot that cannot be tried (unsupported, over
// the cost bounds) is skipped and reported if nothing opens; a cancelled
// context or an I/O error stops at once.
func openSlots(ctx context.Context, r io.ReaderAt, cache *kekCache, tries []keyslotTry) (*memguard.LockedBuffer, int, error) {
	var skipped []error
	tried := 0
	for _, t := range tries {
		if t.problem != nil {
			skipped = append(skipped, fmt.Errorf("keyslot %d: %w", t.slot, t.problem))
			continue
		}
		vk, err := openSlot(ctx, r, cache, &t)
		switch {
		case err == nil:
			return vk, t.slot, nil
		case errors.Is(err, errDigestMismatch):
			tried++
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, -1, err
		case errors.Is(err, ErrUnsupported) || errors.Is(err, kdf.ErrInsufficientMemory) || isCostError(err):
			skipped = append(skipped, fmt.Errorf("keyslot %d: %w", t.slot, err))
		default:
			return nil, -1, fmt.Errorf("keyslot %d: %w", t.slot, err)
		}
	}
	switch {
	case tried > 0 && len(skipped) > 0:
		return nil, -1, fmt.Errorf("%w; not tried: %v", ErrWrongPassphrase, joinErrors(skipped))
	case tried > 0:
		return nil, -1, ErrWrongPassphrase
	case len(skipped) == 1:
		return nil, -1, asUnsupported(skipped[0])
	case len(skipped) > 1:
		return nil, -1, &UnsupportedError{Feature: "keyslots", Detail: "none can be tried", Err: errors.Join(skipped...)}
	}
	return nil, -1, fmt.Errorf("%w: the volume has no usable keyslot", ErrWrongPassphrase)
}

func isCostError(err error) bool {
	var ce *kdf.CostError
	return errors.As(err, &ce)
}

// asUnsupported makes sure err matches ErrUnsupported.
func asUnsupported(err error) error {
	if errors.Is(err, ErrUnsupported) {
		return err
	}
	return &UnsupportedError{Feature: "keyslot", Err: err}
}

func joinErrors(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// openSlot derives the keyslot's key, decrypts its material, merges it and
// checks the result against the digest.
func openSlot(ctx context.Context, r io.ReaderAt, cache *kekCache, t *keyslotTry) (*memguard.LockedBuffer, error) {
	hf, err := newHash(t.afHash)
	if err != nil {
		return nil, &UnsupportedError{Feature: "AF hash", Err: err}
	}
	if err := checkCipher("keyslot area", t.areaCipher, t.kekSize); err != nil {
		return nil, err
	}
	kek, err := cache.derive(t.kdf, t.salt, t.kekSize)
	if err != nil {
		return nil, err
	}
	material := memguard.NewBuffer(afSize(t.keySize))
	defer material.Destroy()
	if _, err := r.ReadAt(material.Bytes(), int64(t.areaOff)); err != nil {
		return nil, fmt.Errorf("reading key material at %d: %w", t.areaOff, err)
	}
	c, wipe, err := newSectorCipher(t.areaCipher, kek.Bytes(), sector)
	if err != nil {
		return nil, err
	}
	c.Decrypt(material.Bytes(), material.Bytes(), 0)
	wipe()
	vk := memguard.NewBuffer(t.keySize)
	acc := memguard.NewBuffer(t.keySize)
	defer acc.Destroy()
	if err := afMerge(vk.Bytes(), material.Bytes(), acc.Bytes(), hf); err != nil {
		vk.Destroy()
		return nil, err
	}
	if err := t.verify(ctx, vk.Bytes()); err != nil {
		vk.Destroy()
		return nil, err
	}
	return vk, nil
}

// verifyPBKDF2 checks a candidate key against a PBKDF2 digest (the LUKS1
// master-key digest, LUKS2 digests of type pbkdf2).
func verifyPBKDF2(ctx context.Context, hash string, iterations uint32, salt, digest, vk []byte) error {
	d, err := kdf.PBKDF2{Hash: hash, Iterations: iterations}.Derive(ctx, vk, salt, len(digest))
	if err != nil {
		return err
	}
	defer d.Destroy()
	if subtle.ConstantTimeCompare(d.Bytes(), digest) != 1 {
		return errDigestMismatch
	}
	return nil
}

// Unlock returns the volume key that secret opens (in locked memory owned by
// the caller) and the keyslot that opened it. secret is a passphrase or the
// bytes of a keyfile: cryptsetup derives keys from both the same way. r is the
// header device. slot restricts the search to one keyslot; AnySlot tries every
// active keyslot, in cryptsetup's order (LUKS2: priority "prefer" first, then
// "normal"; "ignore" only when named). ctx is checked between derivations.
func (h *Header) Unlock(ctx context.Context, r io.ReaderAt, secret []byte, slot int) (*memguard.LockedBuffer, int, error) {
	if err := h.Supported(); err != nil {
		return nil, -1, err
	}
	tries, err := h.tries(slot)
	if err != nil {
		return nil, -1, err
	}
	cache := newKEKCache(ctx, secret)
	defer cache.destroy()
	return openSlots(ctx, r, cache, tries)
}

// tries lists the keyslots an unlock tries, in order.
func (h *Header) tries(slot int) ([]keyslotTry, error) {
	if h.v1 != nil {
		return h.v1.tries(slot)
	}
	return h.v2.meta().tries(slot)
}

func (h *luks1Header) tries(slot int) ([]keyslotTry, error) {
	if slot != AnySlot && (slot < 0 || slot >= luks1SlotCount) {
		return nil, &SlotError{slot, fmt.Sprintf("does not exist (LUKS1 keyslots are 0-%d)", luks1SlotCount-1)}
	}
	if slot != AnySlot && !h.slots[slot].active() {
		return nil, &SlotError{slot, "is not active"}
	}
	var tries []keyslotTry
	for i := range h.slots {
		s := &h.slots[i]
		if !s.active() || slot != AnySlot && i != slot {
			continue
		}
		t := keyslotTry{
			slot: i, kdf: kdfSpec{typ: "pbkdf2", hash: h.hashSpec, iterations: s.iterations},
			salt: s.salt[:], kekSize: int(h.keyBytes), areaOff: uint64(s.offset) * sector,
			areaCipher: h.cipherSpec(), afHash: h.hashSpec, keySize: int(h.keyBytes),
			verify: func(ctx context.Context, vk []byte) error {
				return verifyPBKDF2(ctx, h.hashSpec, h.mkDigestIterations, h.mkDigestSalt[:], h.mkDigest[:], vk)
			},
		}
		if err := (kdf.PBKDF2{Hash: h.hashSpec, Iterations: s.iterations}).Validate(); err != nil {
			t.problem = &UnsupportedError{Feature: fmt.Sprintf("keyslot %d kdf", i), Err: err}
		}
		tries = append(tries, t)
	}
	return tries, nil
}

func (m *luks2Meta) tries(slot int) ([]keyslotTry, error) {
	d := m.segmentDigest()
	usable := func(k *luks2Keyslot) bool { return k.digest == d.id }
	if slot != AnySlot {
		if slot < 0 || slot >= luks2MaxIDs {
			return nil, &SlotError{slot, fmt.Sprintf("does not exist (LUKS2 keyslots are 0-%d)", luks2MaxIDs-1)}
		}
		k := m.keyslot(slot)
		switch {
		case k == nil:
			return nil, &SlotError{slot, "is not active"}
		case !usable(k):
			return nil, &SlotError{slot, "does not hold the volume key (an unbound keyslot)"}
		}
		return []keyslotTry{m.try(k, d)}, nil
	}
	var tries []keyslotTry
	for _, prio := range []int64{PriorityPrefer, PriorityNormal} {
		for _, k := range m.keyslots {
			if usable(k) && k.priority == prio {
				tries = append(tries, m.try(k, d))
			}
		}
	}
	// Keyslots cryptsetup does not try either, listed so that an unlock that
	// finds nothing says why.
	for _, k := range m.keyslots {
		if usable(k) && k.priority != PriorityPrefer && k.priority != PriorityNormal {
			t := m.try(k, d)
			t.problem = unsupported(fmt.Sprintf("keyslot %d", k.id), "priority %s: tried only when asked for by number", priorityName(k.priority))
			tries = append(tries, t)
		}
	}
	return tries, nil
}

func (m *luks2Meta) try(k *luks2Keyslot, d *luks2Digest) keyslotTry {
	return keyslotTry{
		slot: k.id,
		kdf: kdfSpec{typ: k.kdf.Type, hash: k.kdf.Hash, iterations: k.kdf.Iterations,
			memory: k.kdf.Memory, threads: k.kdf.CPUs},
		salt: k.kdf.Salt, kekSize: k.areaKey, areaOff: k.areaOff, areaCipher: k.areaEnc,
		afHash: k.afHash, keySize: k.keySize, problem: k.problem,
		verify: func(ctx context.Context, vk []byte) error {
			return verifyPBKDF2(ctx, d.hash, d.iterations, d.salt, d.digest, vk)
		},
	}
}
