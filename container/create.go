package container

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// Fill says what is written over the data area at creation.
type Fill int

const (
	// FillSparse writes nothing: the file is sparse and occupies disk space only
	// as sectors are written, which reveals how much of the vault is used.
	FillSparse Fill = iota
	// FillRandom writes the encryption of random data over every sector, so used
	// and unused sectors look alike. It takes as long as writing the whole file.
	FillRandom
)

// CreateOptions describe a new vault.
type CreateOptions struct {
	// Size is the plaintext size in bytes: a positive multiple of SectorSize.
	Size int64
	// SectorSize is 4096 (the default if zero) or 512.
	SectorSize int
	// KDF are the Argon2id parameters of the first keyslot (see kdf.Calibrate).
	KDF kdf.Params
	// Fill is FillSparse (default) or FillRandom.
	Fill Fill
	// Progress, if set, is called as the random fill advances.
	Progress func(done, total int64)
	// Force replaces an existing file (atomically, once the new vault is
	// complete); without it Create fails with ErrExists. A vault that is
	// open (its data locked by Open: a server has it) is not replaced:
	// ErrInUse, since its writes would go on into the replaced file.
	Force bool
	// Format, if set, is called with the new volume before the vault gets its
	// name, to make a filesystem in it; if it fails, nothing is created.
	Format func(*Volume) error
	// Type is the format: TypeCryptvol (the default if empty) or TypeLUKS2
	// (a LUKS2 volume with cryptsetup 2.6's defaults, docs/LUKS.md).
	Type Type
}

// Create makes a new vault at path, protected by passphrase in keyslot 0, and
// returns it open read-write. The file appears under its name only once it is
// complete and synced; an interrupted Create (ctx cancelled) leaves nothing.
func Create(ctx context.Context, path string, s Secret, opts *CreateOptions) (*Volume, error) {
	o := *opts
	if o.SectorSize == 0 {
		o.SectorSize = 4096
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil && !o.Force {
		return nil, fmt.Errorf("%s: %w", path, ErrExists)
	}
	if len(s.Passphrase) == 0 && len(s.Keyfiles) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	if o.Force {
		old, err := holdReplaced(path)
		if err != nil {
			return nil, err
		}
		if old != nil {
			defer old.Close()
		}
	}
	switch o.Type {
	case "", TypeCryptvol:
	case TypeLUKS2:
		return createLUKS2(ctx, path, s, &o)
	default:
		return nil, fmt.Errorf("cannot create a %s volume (create makes %s and %s)", o.Type, TypeCryptvol, TypeLUKS2)
	}

	mk := memguard.NewBuffer(header.MasterKeySize)
	defer mk.Destroy()
	for {
		if _, err := rand.Read(mk.Bytes()); err != nil {
			return nil, err
		}
		if !equalHalves(mk.Bytes()) { // 2^-256; XTS forbids it all the same
			break
		}
	}
	h := &header.Header{
		Sequence:   1,
		Cipher:     header.CipherAESXTSPlain64,
		SectorSize: uint32(o.SectorSize),
		DataOffset: header.DataAlignment,
		DataSize:   uint64(o.Size),
	}
	if _, err := rand.Read(h.UUID[:]); err != nil {
		return nil, err
	}
	h.UUID[6] = h.UUID[6]&0x0f | 0x40 // RFC 4122 version 4
	h.UUID[8] = h.UUID[8]&0x3f | 0x80

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cryptvol-tmp-*")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// The vault's first header copy is written through a Vault so it follows
	// the same sealing and validation as every later change.
	v := &v1Vault{path: path, f: tmp, writable: true, ops: tmp, mk: mk, h: h, warn: func(string) {}}
	slot, err := v.newSlot(ctx, s, o.KDF)
	if err != nil {
		return nil, err
	}
	h.Slots[0] = slot
	if err := tmp.Truncate(h.FileSize()); err != nil {
		return nil, err
	}
	// Written as an update from "no valid copy": the primary goes first.
	v.l = &layout{}
	v.l.winner = &v.l.backup
	if err := v.commit(h); err != nil {
		return nil, err
	}
	vol, err := newVolume(tmp, path, "", TypeCryptvol, mk, false, nil)
	if err != nil {
		return nil, err
	}
	if err := finishCreate(ctx, tmp, path, vol, &o); err != nil {
		return nil, err
	}
	done = true
	return vol, nil
}

// finishCreate fills and formats a new volume in the temporary file tmp, and
// gives it its name once complete and synced. On error it closes vol.
func finishCreate(ctx context.Context, tmp *os.File, path string, vol *Volume, o *CreateOptions) error {
	closeVol := true
	defer func() {
		if closeVol {
			vol.Close()
		}
	}()
	if o.Fill == FillRandom {
		if err := vol.fillRandom(ctx, o.Progress); err != nil {
			return err
		}
	}
	if o.Format != nil {
		if err := o.Format(vol); err != nil {
			return err
		}
		if err := vol.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := rename(tmp.Name(), path, o.Force); err != nil {
		return err
	}
	closeVol = false
	syncDir(filepath.Dir(path))
	return nil
}

// createLUKS2 is Create for TypeLUKS2: luks.Create's header (data at 16 MiB)
// in a temporary file of that size plus o.Size, then as Create.
func createLUKS2(ctx context.Context, path string, s Secret, o *CreateOptions) (*Volume, error) {
	secret, err := luksSecret(s)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".cryptvol-tmp-*")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	size := luks.DefaultDataOffset + o.Size
	if err := tmp.Truncate(size); err != nil {
		return nil, err
	}
	h, vk, err := luks.Create(ctx, tmp, size, secret, luks.CreateOptions{
		Key: luks.NewKey{Argon2: o.KDF.Argon2id()}, SectorSize: o.SectorSize})
	if err != nil {
		return nil, luksError(path, err)
	}
	defer vk.Destroy()
	if err := lockByte(tmp, dataLockByte, true, false); err != nil {
		return nil, err
	}
	g, err := luksGeometry(h, tmp.Name(), tmp.Name())
	if err != nil {
		return nil, err
	}
	vol, err := newVolumeAt(tmp, path, TypeLUKS2, h.UUID(), g, vk, false)
	if err != nil {
		return nil, err
	}
	if err := finishCreate(ctx, tmp, path, vol, o); err != nil {
		return nil, err
	}
	done = true
	return vol, nil
}

func (o *CreateOptions) check() error {
	switch {
	case o.SectorSize != 512 && o.SectorSize != 4096:
		return fmt.Errorf("sector size %d: must be 512 or 4096", o.SectorSize)
	case o.Size <= 0:
		return fmt.Errorf("size %d: must be positive", o.Size)
	case o.Size%int64(o.SectorSize) != 0:
		return fmt.Errorf("size %d: must be a multiple of the sector size (%d)", o.Size, o.SectorSize)
	case uint64(o.Size) > header.MaxDataSize:
		return fmt.Errorf("size %d: above the maximum of 2^60 bytes", o.Size)
	case o.Fill != FillSparse && o.Fill != FillRandom:
		return fmt.Errorf("unknown fill %d", o.Fill)
	}
	return o.KDF.Validate()
}

// fillRandom writes encrypted random data over the whole data area.
func (v *Volume) fillRandom(ctx context.Context, progress func(done, total int64)) error {
	return v.fillRandomFrom(ctx, 0, progress)
}

// fillRandomFrom writes encrypted random data over the data area from byte
// from (a multiple of the sector size) to its end.
func (v *Volume) fillRandomFrom(ctx context.Context, from int64, progress func(done, total int64)) error {
	bp := v.bufs.Get().(*[]byte)
	defer v.bufs.Put(bp)
	for off := from; off < v.size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := (*bp)[:min(int64(chunkSize), v.size-off)]
		rand.Read(b)
		v.crypt(v.sc.Encrypt, b, b, off)
		if err := v.pwrite(b, off); err != nil {
			return err
		}
		off += int64(len(b))
		if progress != nil {
			progress(off, v.size)
		}
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
