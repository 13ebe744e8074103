package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// LUKS1 and LUKS2 volumes (docs/LUKS.md), adapted from package luks.
const (
	TypeLUKS1 Type = "luks1"
	TypeLUKS2 Type = "luks2"
)

// maxLUKSKeyfile bounds the part of a keyfile that is a LUKS secret:
// cryptsetup's default limit (--keyfile-size up to 8 MiB).
const maxLUKSKeyfile = 8 << 20

func isLUKS(t Type) bool { return t == TypeLUKS1 || t == TypeLUKS2 }

// luksSecret is what a LUKS keyslot's key is derived from: the passphrase,
// or the bytes of one keyfile (from KeyfileOffset, KeyfileSize bytes of it or
// up to its end), exactly as cryptsetup takes them. The caller wipes it.
func luksSecret(s Secret) ([]byte, error) {
	switch {
	case len(s.Keyfiles) > 1:
		return nil, errors.New("a LUKS keyslot takes one keyfile, not several")
	case len(s.Keyfiles) == 1 && len(s.Passphrase) > 0:
		return nil, errors.New("a LUKS keyslot takes a passphrase or a keyfile, not both")
	case s.KeyfileOffset < 0 || s.KeyfileSize < 0:
		return nil, errors.New("the keyfile offset and size must not be negative")
	case len(s.Keyfiles) == 0 && (s.KeyfileOffset != 0 || s.KeyfileSize != 0):
		return nil, errors.New("a keyfile offset or size needs a keyfile")
	case len(s.Keyfiles) == 0:
		return append([]byte(nil), s.Passphrase...), nil
	}
	path := s.Keyfiles[0]
	f, err := openKeyfile(path, s.SpecialKeyfiles)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := int64(maxLUKSKeyfile)
	if s.KeyfileSize > 0 {
		if s.KeyfileSize > maxLUKSKeyfile {
			return nil, &KeyfileError{path, fmt.Errorf("a keyfile size of %d bytes is above the limit of %d", s.KeyfileSize, maxLUKSKeyfile)}
		}
		limit = s.KeyfileSize
	}
	if s.KeyfileOffset > 0 {
		if _, err := f.Seek(s.KeyfileOffset, io.SeekStart); err != nil {
			return nil, &KeyfileError{path, err}
		}
	}
	b := make([]byte, limit+1)
	n, err := io.ReadFull(f, b)
	switch {
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		clear(b)
		return nil, &KeyfileError{path, err}
	case s.KeyfileSize > 0 && int64(n) < s.KeyfileSize:
		clear(b)
		return nil, &KeyfileError{path, fmt.Errorf("has %d bytes after offset %d, fewer than the keyfile size %d", n, s.KeyfileOffset, s.KeyfileSize)}
	case s.KeyfileSize == 0 && int64(n) > limit:
		clear(b)
		return nil, &KeyfileError{path, fmt.Errorf("is larger than %d bytes (give --keyfile-size)", limit)}
	}
	secret := append([]byte(nil), b[:min(int64(n), limit)]...)
	clear(b)
	return secret, nil
}

// luksDevice is how header changes reach the header file (a fault-injecting
// wrapper in tests).
type luksDevice interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// luksVault is an unlocked LUKS volume: its header and volume key.
type luksVault struct {
	path     string // the volume (the data device)
	hdrPath  string // the header: path, or a detached header file
	f        *os.File
	dev      luksDevice
	writable bool
	h        *luks.Header
	mk       *memguard.LockedBuffer
	slot     int
	warn     func(string)
}

// fileSize is the size of an open file or block device.
func fileSize(f *os.File) (int64, error) {
	return f.Seek(0, io.SeekEnd)
}

// luksError makes package luks's errors container's: a damaged or
// unsupported header matches ErrDamaged (exit 4), a wrong passphrase
// ErrWrongPassphrase, a keyslot in the wrong state a *SlotError.
func luksError(path string, err error) error {
	var se *luks.SlotError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &SlotError{se.Slot, se.Reason}
	case errors.Is(err, luks.ErrWrongPassphrase):
		return fmt.Errorf("%s: %w", path, ErrWrongPassphrase)
	case errors.Is(err, luks.ErrLastSlot):
		return ErrLastSlot
	case errors.Is(err, luks.ErrNoFreeSlot):
		return fmt.Errorf("%w: %v", ErrNoFreeSlot, err)
	case errors.Is(err, luks.ErrHeaderChanged):
		return ErrHeaderChanged
	case errors.Is(err, luks.ErrDamaged), errors.Is(err, luks.ErrUnsupported), errors.Is(err, luks.ErrNotLUKS), errors.Is(err, luks.ErrWrongKey):
		return fmt.Errorf("%s: %w", path, &damagedError{err})
	}
	return fmt.Errorf("%s: %w", path, err)
}

// readLUKSHeader reads the LUKS header of the open header file f under a
// shared header lock.
func readLUKSHeader(f *os.File, hdrPath string) (*luks.Header, error) {
	if err := lockByte(f, headerLockByte, false, true); err != nil {
		return nil, err
	}
	defer unlockByte(f, headerLockByte)
	size, err := fileSize(f)
	if err != nil {
		return nil, err
	}
	h, err := luks.Read(f, size)
	if err != nil {
		return nil, luksError(hdrPath, err)
	}
	return h, nil
}

// luksGeometry is the data geometry of h for the data device at path.
func luksGeometry(h *luks.Header, path, hdrPath string) (Geometry, error) {
	df, err := os.Open(path)
	if err != nil {
		return Geometry{}, err
	}
	defer df.Close()
	size, err := fileSize(df)
	if err != nil {
		return Geometry{}, err
	}
	g, err := h.Geometry(size, hdrPath != path)
	if err != nil {
		return Geometry{}, luksError(path, err)
	}
	return Geometry{Offset: int64(g.Offset), Size: int64(g.Size), SectorSize: g.SectorSize,
		IVOffset: g.IVOffset, IVStep: uint64(g.SectorSize / 512), Cipher: g.Cipher, KeySize: g.KeySize}, nil
}

// reportCopies warns about LUKS2 metadata copies that are damaged or older:
// they are repaired only by `cryptvol header repair` (docs/LUKS.md).
func reportCopies(h *luks.Header, warn func(string)) {
	for _, c := range h.Info().Copies {
		if c.Problem != "" {
			warn(fmt.Sprintf("the %s LUKS2 header copy: %s; not repaired (cryptvol header repair does it)", c.Name, c.Problem))
		}
	}
}

// unlockLUKS opens a LUKS volume's keyslot with s.
func unlockLUKS(ctx context.Context, path string, s Secret, opts *UnlockOptions) (*luksVault, error) {
	hdrPath := path
	if opts.Header != "" {
		hdrPath = opts.Header
	}
	secret, err := luksSecret(s)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(hdrPath, flag, 0)
	if err != nil {
		return nil, err
	}
	v := &luksVault{path: path, hdrPath: hdrPath, f: f, dev: f, writable: !opts.ReadOnly, slot: -1, warn: opts.Warn}
	if v.h, err = readLUKSHeader(f, hdrPath); err != nil {
		f.Close()
		return nil, err
	}
	if err := v.h.Supported(); err != nil {
		f.Close()
		return nil, luksError(hdrPath, err)
	}
	reportCopies(v.h, v.warn)
	slots := opts.Slots
	if slots == nil {
		slots = []int{luks.AnySlot}
	}
	for _, slot := range slots {
		v.mk, v.slot, err = v.h.Unlock(ctx, f, secret, slot)
		if err == nil || !errors.Is(err, luks.ErrWrongPassphrase) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, luksError(path, err)
	}
	if _, err := luksGeometry(v.h, path, hdrPath); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

func (v *luksVault) masterKey() *memguard.LockedBuffer { return v.mk }
func (v *luksVault) keyslot() int                      { return v.slot }
func (v *luksVault) uuid() string                      { return v.h.UUID() }

func (v *luksVault) geometry() Geometry {
	g, _ := luksGeometry(v.h, v.path, v.hdrPath) // checked at unlock
	return g
}

// update runs f under the exclusive header lock.
func (v *luksVault) update(f func() error) error {
	if !v.writable {
		return errReadOnlyVault
	}
	if err := lockByte(v.f, headerLockByte, true, true); err != nil {
		return err
	}
	defer unlockByte(v.f, headerLockByte)
	return luksError(v.hdrPath, f())
}

// newKey is how a new keyslot protects the key: Argon2id with p (LUKS2), or
// PBKDF2 with the header's hash calibrated to take as long as p (LUKS1).
func (v *luksVault) newKey(p kdf.Params, slot int) (luks.NewKey, error) {
	if err := p.Validate(); err != nil {
		return luks.NewKey{}, err
	}
	nk := luks.NewKey{Slot: slot, Argon2: p.Argon2id()}
	if slot < 0 {
		nk.Slot = luks.AnySlot
	}
	if v.h.Version() == 1 {
		d, err := kdf.Measure(p)
		if err != nil {
			return luks.NewKey{}, err
		}
		info := v.h.Info()
		if nk.PBKDF2, err = kdf.CalibratePBKDF2(info.Hash, d, info.KeySize); err != nil {
			return luks.NewKey{}, err
		}
	}
	return nk, nil
}

func (v *luksVault) addKey(ctx context.Context, s Secret, p kdf.Params, slot int) (int, error) {
	secret, err := luksSecret(s)
	if err != nil {
		return -1, err
	}
	defer clear(secret)
	nk, err := v.newKey(p, slot)
	if err != nil {
		return -1, err
	}
	var got int
	err = v.update(func() error {
		var err error
		got, err = v.h.AddKey(ctx, v.dev, v.mk, secret, nk)
		return err
	})
	return got, err
}

func (v *luksVault) changeKey(ctx context.Context, slot int, s Secret, p kdf.Params) error {
	secret, err := luksSecret(s)
	if err != nil {
		return err
	}
	defer clear(secret)
	nk, err := v.newKey(p, -1)
	if err != nil {
		return err
	}
	return v.update(func() error {
		got, err := v.h.ChangeKey(ctx, v.dev, v.mk, slot, secret, nk)
		if err == nil && got != slot {
			v.warn(fmt.Sprintf("the new passphrase is in keyslot %d (a LUKS1 change moves it, as cryptsetup does)", got))
		}
		return err
	})
}

func (v *luksVault) removeKey(slot int) error {
	return v.update(func() error { return v.h.RemoveKey(v.dev, slot) })
}

// repair rewrites a damaged or older LUKS2 metadata copy (only when asked).
func (v *luksVault) repair() error {
	before := v.h.Info().Copies
	if err := v.update(func() error { return v.h.Repair(v.dev) }); err != nil {
		return err
	}
	for _, c := range before {
		if c.Problem != "" {
			v.warn(fmt.Sprintf("the %s LUKS2 header copy was %s; repaired it from the other copy", c.Name, strings.TrimSpace(c.Problem)))
		}
	}
	return nil
}

// grow enlarges the data to newSize bytes. A LUKS1 volume and a LUKS2 volume
// of dynamic size grow with their file: it is extended (and the new space
// filled, with FillRandom) and the header is left as it is; a LUKS2 segment
// of fixed size is then set to the new size.
func (v *luksVault) grow(ctx context.Context, newSize int64, fill Fill, progress func(done, total int64)) error {
	if !v.writable {
		return errReadOnlyVault
	}
	g := v.geometry()
	ss := int64(g.SectorSize)
	switch {
	case newSize < g.Size:
		return ErrShrink
	case newSize == g.Size:
		return fmt.Errorf("%s is already %d bytes", v.path, newSize)
	case newSize%ss != 0:
		return fmt.Errorf("size %d: must be a multiple of the sector size (%d)", newSize, ss)
	}
	df, err := os.OpenFile(v.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer df.Close()
	if st, err := df.Stat(); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: only files can grow", v.path)
	}
	if err := lockByte(df, dataLockByte, true, false); err != nil {
		return fmt.Errorf("%s: %w (close it before resizing)", v.path, err)
	}
	defer unlockByte(df, dataLockByte)
	if err := df.Truncate(g.Offset + newSize); err != nil {
		return err
	}
	if err := fdatasync(df); err != nil {
		return err
	}
	if err := v.update(func() error { return v.h.SetDataSize(v.dev, uint64(newSize)) }); err != nil {
		return err
	}
	if fill != FillRandom {
		return nil
	}
	vf, err := os.OpenFile(v.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	ng := g
	ng.Size = newSize
	vol, err := newVolumeAt(vf, v.path, v.typ(), v.uuid(), ng, v.mk, false)
	if err != nil {
		vf.Close()
		return err
	}
	defer vol.Close()
	if err := vol.fillRandomFrom(ctx, g.Size, progress); err != nil {
		return err
	}
	return vol.Sync()
}

func (v *luksVault) close() error {
	if v.mk != nil {
		v.mk.Destroy()
		v.mk = nil
	}
	if v.f == nil {
		return nil
	}
	err := v.f.Close()
	v.f = nil
	return err
}

// luksKeyGeometry reads the header of a LUKS volume and checks a volume key
// handed over by another process against it.
func luksKeyGeometry(path, hdrPath string, mk *memguard.LockedBuffer) (Geometry, string, error) {
	f, err := os.Open(hdrPath)
	if err != nil {
		return Geometry{}, "", err
	}
	defer f.Close()
	h, err := readLUKSHeader(f, hdrPath)
	if err != nil {
		return Geometry{}, "", err
	}
	if err := h.VerifyKey(context.Background(), mk); err != nil {
		return Geometry{}, "", luksError(path, err)
	}
	g, err := luksGeometry(h, path, hdrPath)
	return g, h.UUID(), err
}

// luksKeySize is the volume key size of the LUKS header at hdrPath.
func luksKeySize(hdrPath string) (int, error) {
	f, err := os.Open(hdrPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h, err := readLUKSHeader(f, hdrPath)
	if err != nil {
		return 0, err
	}
	if err := h.Supported(); err != nil {
		return 0, luksError(hdrPath, err)
	}
	return h.Info().KeySize, nil
}

// inspectLUKS is Inspect for a LUKS volume or header file.
func inspectLUKS(path string, typ Type) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := readLUKSHeader(f, path)
	if err != nil {
		return nil, err
	}
	size, err := fileSize(f)
	if err != nil {
		return nil, err
	}
	li := h.Info()
	info := &Info{Path: path, Type: typ, Version: li.Version, FileSize: size, UUID: li.UUID,
		Keyslots: []SlotInfo{}, SlotCount: li.MaxKeyslots, LUKS: li}
	info.Geometry = Geometry{Offset: int64(li.DataOffset), SectorSize: li.SectorSize, IVOffset: li.IVOffset,
		IVStep: uint64(max(li.SectorSize, 512) / 512), Cipher: li.Cipher, KeySize: li.KeySize}
	if g, err := h.Geometry(size, false); err == nil {
		info.Geometry.Size = int64(g.Size)
	}
	info.Primary, info.Backup = CopyStatus{Offset: 0}, CopyStatus{Offset: -1} // LUKS1 has one header
	for i, c := range li.Copies {
		cs := CopyStatus{Offset: int64(c.Offset), Sequence: c.Seqid, Problem: c.Problem}
		if i == 0 {
			info.Primary = cs
		} else {
			info.Backup = cs
		}
		if c.Current {
			info.Sequence = c.Seqid
		}
	}
	for _, k := range li.Keyslots {
		name := k.KDF.Type
		if name == "pbkdf2" {
			name = "pbkdf2-" + k.KDF.Hash
		}
		info.Keyslots = append(info.Keyslots, SlotInfo{Slot: k.Slot, KDF: name, Memory: k.KDF.Memory,
			Iterations: k.KDF.Iterations, Threads: k.KDF.Threads, Wrap: "af-" + k.AFHash + "+" + k.AreaCipher})
	}
	return info, nil
}

func (v *luksVault) typ() Type {
	if v.h.Version() == 1 {
		return TypeLUKS1
	}
	return TypeLUKS2
}
