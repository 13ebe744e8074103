package container

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/tcrypt"
)

// VeraCryptOptions describe a new VeraCrypt volume.
type VeraCryptOptions struct {
	// Size is the data size in bytes, a positive multiple of 512; the file
	// is 256 KiB longer (header areas at each end).
	Size int64
	// Algorithm is the encryption algorithm as VeraCrypt names it
	// (cipher.VeraCryptAlgorithms; default "AES").
	Algorithm string
	// PRF and PIM derive the header key (default: SHA-512, no PIM).
	PRF string
	PIM int
	// Fill, Progress, Force and Format are as in CreateOptions.
	Fill     Fill
	Progress func(done, total int64)
	Force    bool
	Format   func(*Volume) error
}

// CreateVeraCrypt makes a new VeraCrypt volume at path, its header key
// derived from s, and returns it open read-write. The file is laid out as
// VeraCrypt 1.26 makes a volume (docs/VERACRYPT.md, "Layout"): header and
// hidden-header areas at the start and their backups at the end, each filled
// with random bytes around the header, so that it does not tell whether a
// hidden volume is there; the master keys are random. As with Create, the
// file gets its name only once complete and synced.
func CreateVeraCrypt(ctx context.Context, path string, s Secret, opts *VeraCryptOptions) (*Volume, error) {
	o := *opts
	if o.Algorithm == "" {
		o.Algorithm = "AES"
	}
	if o.PRF == "" {
		o.PRF = tcrypt.PRFSHA512
	}
	spec, err := cipher.VeraCryptSpec(o.Algorithm)
	if err != nil {
		return nil, err
	}
	prf, err := tcrypt.CanonicalPRF(o.PRF)
	if err != nil {
		return nil, err
	}
	if prf == tcrypt.PRFRIPEMD160 {
		return nil, errors.New("VeraCrypt 1.26 no longer opens volumes with PRF ripemd160: choose another")
	}
	kdfs, err := tcrypt.KDFs(tcrypt.VeraCrypt, prf, o.PIM, false)
	if err != nil {
		return nil, err
	}
	var k tcrypt.KDF
	for _, x := range kdfs {
		if !x.TrueCrypt {
			k = x
		}
	}
	switch {
	case o.Size <= 0 || o.Size%tcrypt.UnitSize != 0:
		return nil, fmt.Errorf("size %d: must be a positive multiple of %d", o.Size, tcrypt.UnitSize)
	case o.Size > 1<<60:
		return nil, fmt.Errorf("size %d: above the maximum of 2^60 bytes", o.Size)
	case o.Fill != FillSparse && o.Fill != FillRandom:
		return nil, fmt.Errorf("unknown fill %d", o.Fill)
	}
	if _, err := os.Lstat(path); err == nil && !o.Force {
		return nil, fmt.Errorf("%s: %w", path, ErrExists)
	}
	if len(s.Passphrase) == 0 && len(s.Keyfiles) == 0 {
		return nil, errors.New("the passphrase is empty")
	}
	pw, err := newTCryptPassword(tcrypt.VeraCrypt, s)
	if err != nil {
		return nil, err
	}
	defer memguard.WipeBytes(pw)
	keys, err := tcrypt.NewKeys(o.Algorithm)
	if err != nil {
		return nil, err
	}
	defer keys.Destroy()
	h := tcrypt.NewHeader(uint64(o.Size))
	var hdrs [2][]byte // primary, backup: each with a salt of its own
	for i := range hdrs {
		salt, err := tcrypt.NewSalt()
		if err != nil {
			return nil, err
		}
		if hdrs[i], err = tcrypt.Seal(ctx, h, keys.Bytes(), pw, salt, k, o.Algorithm); err != nil {
			return nil, err
		}
	}

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
	fileSize := tcrypt.DataOffset + o.Size + tcrypt.BackupAreaSize
	if err := tmp.Truncate(fileSize); err != nil {
		return nil, err
	}
	// The four header areas: random, with the headers in the first and
	// third (the hidden volume's places stay random).
	area := make([]byte, tcrypt.HeaderAreaSize)
	for i, off := range []int64{0, tcrypt.HeaderAreaSize, fileSize - tcrypt.BackupAreaSize, fileSize - tcrypt.HeaderAreaSize} {
		if _, err := rand.Read(area); err != nil {
			return nil, err
		}
		switch i {
		case 0:
			copy(area, hdrs[0])
		case 2:
			copy(area, hdrs[1])
		}
		if _, err := tmp.WriteAt(area, off); err != nil {
			return nil, err
		}
	}
	mk := memguard.NewBufferFromBytes(append([]byte(nil), keys.Bytes()[:spec.KeySize]...))
	defer mk.Destroy()
	g := Geometry{Offset: tcrypt.DataOffset, Size: o.Size, SectorSize: tcrypt.UnitSize, IVOffset: tcrypt.DataOffset / tcrypt.UnitSize,
		Cipher: spec.String(), KeySize: spec.KeySize}
	if err := lockByte(tmp, dataLockByte, true, false); err != nil {
		return nil, err
	}
	vol, err := newVolumeAt(tmp, path, TypeVeraCrypt, "", g, mk, false)
	if err != nil {
		return nil, err
	}
	closeVol := true
	defer func() {
		if closeVol {
			vol.Close()
		}
	}()
	if o.Fill == FillRandom {
		if err := vol.fillRandom(ctx, o.Progress); err != nil {
			return nil, err
		}
	}
	if o.Format != nil {
		if err := o.Format(vol); err != nil {
			return nil, err
		}
		if err := vol.Sync(); err != nil {
			return nil, err
		}
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := rename(tmp.Name(), path, o.Force); err != nil {
		return nil, err
	}
	done, closeVol = true, false
	syncDir(filepath.Dir(path))
	return vol, nil
}
