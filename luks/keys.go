package luks

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// Device is where header changes go: the volume, or a detached header file.
// Every change is a sequence of writes and syncs ordered so that a crash at any
// point leaves a header that opens with exactly the old or the new set of
// keys (docs/LUKS.md, "Updates"); tests wrap a Device to fail each step.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// NewKey says how a new keyslot protects the volume key.
type NewKey struct {
	// Slot is the keyslot to use, or AnySlot for the lowest free one.
	Slot int
	// Argon2 is the derivation of a new LUKS2 keyslot (Variant empty means
	// argon2id). It is used unless PBKDF2.Iterations is set.
	Argon2 kdf.Argon2
	// PBKDF2 is the derivation of a new LUKS1 keyslot, whose hash must be the
	// header's (empty means the header's), or of a LUKS2 keyslot when
	// Iterations is not 0 (empty hash means sha256) — for boot loaders that
	// read only PBKDF2 keyslots.
	PBKDF2 kdf.PBKDF2
}

// random is the source of salts, AF stripes and new keys; tests may not
// replace it, it is a name for the one source.
var random io.Reader = rand.Reader

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(random, b); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return b, nil
}

// VerifyKey checks that vk is the volume's key (against its digest):
// ErrWrongKey if not. A key handed over by another process is checked so
// before the data is opened with it.
func (h *Header) VerifyKey(ctx context.Context, vk *memguard.LockedBuffer) error {
	return h.checkVolumeKey(ctx, vk)
}

// checkVolumeKey verifies vk against the volume's digest before anything is
// written with it.
func (h *Header) checkVolumeKey(ctx context.Context, vk *memguard.LockedBuffer) error {
	if err := h.Supported(); err != nil {
		return err
	}
	var err error
	if h.v1 != nil {
		if vk.Size() != int(h.v1.keyBytes) {
			return ErrWrongKey
		}
		err = verifyPBKDF2(ctx, h.v1.hashSpec, h.v1.mkDigestIterations, h.v1.mkDigestSalt[:], h.v1.mkDigest[:], vk.Bytes())
	} else {
		m := h.v2.meta()
		d := m.segmentDigest()
		if vk.Size() != m.volumeKeySize() {
			return ErrWrongKey
		}
		err = verifyPBKDF2(ctx, d.hash, d.iterations, d.salt, d.digest, vk.Bytes())
	}
	if err == errDigestMismatch {
		return ErrWrongKey
	}
	return err
}

// sealedMaterial derives a key from secret with spec and salt and returns the
// AF split of vk encrypted under it with areaCipher, ready to be written to a
// keyslot area (afSize(len(vk)) bytes, in locked memory the caller destroys).
func sealedMaterial(ctx context.Context, vk []byte, secret []byte, spec kdfSpec, salt []byte, kekSize int, areaCipher, afHash string) (*memguard.LockedBuffer, error) {
	hf, err := newHash(afHash)
	if err != nil {
		return nil, err
	}
	kek, err := spec.derive(ctx, secret, salt, kekSize)
	if err != nil {
		return nil, err
	}
	defer kek.Destroy()
	material := memguard.NewBuffer(afSize(len(vk)))
	acc := memguard.NewBuffer(len(vk))
	defer acc.Destroy()
	if err := afSplit(material.Bytes(), vk, acc.Bytes(), hf, random); err != nil {
		material.Destroy()
		return nil, err
	}
	c, wipe, err := newSectorCipher(areaCipher, kek.Bytes(), sector)
	if err != nil {
		material.Destroy()
		return nil, err
	}
	c.Encrypt(material.Bytes(), material.Bytes(), 0)
	wipe()
	return material, nil
}

// writeSync writes b at off and syncs.
func writeSync(dev Device, b []byte, off uint64) error {
	if _, err := dev.WriteAt(b, int64(off)); err != nil {
		return err
	}
	return dev.Sync()
}

// wipeArea overwrites a keyslot area with random bytes and syncs: the key
// material of a removed keyslot is gone even if the header write after it
// never happens.
func wipeArea(dev Device, off, size uint64) error {
	const chunk = 1 << 20
	for done := uint64(0); done < size; {
		n := min(size-done, chunk)
		b, err := randomBytes(int(n))
		if err != nil {
			return err
		}
		if _, err := dev.WriteAt(b, int64(off+done)); err != nil {
			return fmt.Errorf("wiping key material: %w", err)
		}
		done += n
	}
	return dev.Sync()
}

// AddKey stores vk (the volume key, from Unlock) under secret in a new
// keyslot and returns its number. The key material is written and synced
// before the header that enables it.
func (h *Header) AddKey(ctx context.Context, dev Device, vk *memguard.LockedBuffer, secret []byte, opts NewKey) (int, error) {
	if err := h.checkVolumeKey(ctx, vk); err != nil {
		return -1, err
	}
	if h.v1 != nil {
		return h.addKey1(ctx, dev, vk, secret, opts)
	}
	return h.addKey2(ctx, dev, vk, secret, opts, -1)
}

// ChangeKey replaces the secret of keyslot slot by secret and returns the
// keyslot that now holds it. It never overwrites the old key material before
// the new one is in place: LUKS2 writes the new material to a free area and
// switches the keyslot to it in one header update (the number stays the same,
// as with cryptsetup); LUKS1 adds the new key in a free keyslot and then
// removes the old one (the number changes, as with cryptsetup). Without a
// free keyslot or area it fails with ErrNoFreeSlot rather than overwrite in
// place, which a crash could turn into a lost volume.
func (h *Header) ChangeKey(ctx context.Context, dev Device, vk *memguard.LockedBuffer, slot int, secret []byte, opts NewKey) (int, error) {
	if err := h.checkVolumeKey(ctx, vk); err != nil {
		return -1, err
	}
	if _, err := h.tries(slot); err != nil {
		return -1, err
	}
	if slot == AnySlot {
		return -1, &SlotError{slot, "does not exist: name the keyslot to change"}
	}
	if h.v1 != nil {
		opts.Slot = AnySlot
		n, err := h.addKey1(ctx, dev, vk, secret, opts)
		if err != nil {
			return -1, err
		}
		return n, h.removeKey1(dev, slot)
	}
	return h.addKey2(ctx, dev, vk, secret, opts, slot)
}

// RemoveKey removes keyslot slot: its key material is overwritten first, then
// the header stops listing it. The last keyslot that opens the data is never
// removed (ErrLastSlot).
func (h *Header) RemoveKey(dev Device, slot int) error {
	if err := h.Supported(); err != nil {
		return err
	}
	if slot == AnySlot {
		return &SlotError{slot, "does not exist: name the keyslot to remove"}
	}
	if h.v1 != nil {
		return h.removeKey1(dev, slot)
	}
	return h.removeKey2(dev, slot)
}
