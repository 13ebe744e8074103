package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/header"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// Formats. Each container format is one package that reads and writes its
// header, bytes in and bytes out (package header for cryptvol's own format),
// adapted here behind one small interface (keyslots): unlocking with a
// Secret gives a master key, the data Geometry and, where the format allows
// it, key management. Everything above this package (the servers, the CLI)
// sees a Vault or a Volume and never branches on the format.

// Type names a container format.
type Type string

const (
	// TypeCryptvol is cryptvol's own format, version 1 (docs/FORMAT.md).
	TypeCryptvol Type = "cryptvol"
)

// Geometry is where a container's encrypted data lies and how it is
// encrypted: everything a Volume needs besides the key.
type Geometry struct {
	// Offset is the byte offset of the data area in the file.
	Offset int64 `json:"offset"`
	// Size is the plaintext size in bytes, a multiple of SectorSize.
	Size int64 `json:"size"`
	// SectorSize is the encryption unit: 512 or 4096.
	SectorSize int `json:"sector_size"`
	// IVOffset and IVStep make a sector's IV or tweak from its index n
	// (counted in SectorSize units from the start of the data area):
	// IVOffset + n × IVStep. IVStep 0 means 1 (consecutive IVs); LUKS counts
	// IVs in 512-byte units at every sector size, so its IVStep is
	// SectorSize/512 (docs/LUKS.md, "The IV of a data sector").
	IVOffset uint64 `json:"iv_offset"`
	IVStep   uint64 `json:"iv_step,omitempty"`
	// Cipher is the sector cipher, as dm-crypt names it ("aes-xts-plain64").
	Cipher string `json:"cipher"`
	// KeySize is the master key's length in bytes.
	KeySize int `json:"key_size"`
	// Protected, if set, is a range of the plaintext that no write may
	// reach: the data of a hidden volume inside this one (VeraCrypt's
	// hidden volume protection). A write into it fails with
	// ErrProtectedArea, and so does every write after it, until the Volume
	// is closed.
	Protected *Range `json:"protected,omitempty"`
}

// Range is a span of bytes.
type Range struct {
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
}

// End is the byte after the range.
func (r Range) End() int64 { return r.Offset + r.Size }

// Secret is what unlocks a vault: a passphrase, keyfiles, or both. Each
// format combines them its own way (cryptvol v1: docs/FORMAT.md §4.1, the
// keyfiles' SHA-256 digests appended to the passphrase). The caller owns
// Passphrase and wipes it; nothing here keeps it.
type Secret struct {
	Passphrase []byte
	// Keyfiles are paths; their contents are read when the secret is used,
	// at most kdf.MaxKeyfileSize bytes each.
	Keyfiles []string
	// SpecialKeyfiles accepts keyfiles that are not regular files: a pipe
	// (`--keyfile <(gpg -d key.gpg)`), a device. Without it they are
	// refused, before anything is read: reading /dev/zero never ends, and
	// opening a FIFO nobody writes to never returns.
	SpecialKeyfiles bool
	// KeyfileOffset and KeyfileSize select the part of the keyfile that is
	// the secret, as cryptsetup's --keyfile-offset and --keyfile-size do
	// (size 0: to the end). LUKS only.
	KeyfileOffset int64
	KeyfileSize   int64
}

// Passphrase is a Secret made of a passphrase alone.
func Passphrase(p []byte) Secret { return Secret{Passphrase: p} }

// KeyfileError is a keyfile that cannot be used: missing, unreadable, not a
// file. It is not a wrong secret (exit 3): the user can fix it.
type KeyfileError struct {
	Path string
	Err  error
}

func (e *KeyfileError) Error() string {
	var pe *os.PathError
	if errors.As(e.Err, &pe) {
		return "keyfile: " + e.Err.Error()
	}
	return "keyfile " + e.Path + ": " + e.Err.Error()
}

func (e *KeyfileError) Unwrap() error { return e.Err }

// ErrSpecialKeyfile is a keyfile that is not a regular file, refused unless
// Secret.SpecialKeyfiles.
var ErrSpecialKeyfile = errors.New("not a regular file (a pipe or device is read only when allowed)")

// ErrEmptySecret is a new keyslot whose whole secret would be empty: no
// passphrase, and keyfiles that are all empty. Every empty file would open it.
var ErrEmptySecret = errors.New("the secret is empty: no passphrase, and every keyfile is empty (any empty file would open this keyslot)")

// CheckKeyfiles reports a keyfile of s that cannot be read (missing, a
// directory, not a regular file unless allowed) before anything slow happens,
// such as a passphrase prompt. It reads nothing from them.
func (s Secret) CheckKeyfiles() error {
	if len(s.Keyfiles) > kdf.MaxKeyfiles {
		return fmt.Errorf("%d keyfiles: at most %d are allowed", len(s.Keyfiles), kdf.MaxKeyfiles)
	}
	for _, p := range s.Keyfiles {
		if err := checkKeyfile(p, s.SpecialKeyfiles); err != nil {
			return err
		}
	}
	return nil
}

// checkKeyfile checks a keyfile without opening it (opening a FIFO waits for
// a writer, and a pipe from process substitution can be read only once).
func checkKeyfile(path string, special bool) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return &KeyfileError{path, err}
	case st.IsDir():
		return &KeyfileError{path, errors.New("is a directory")}
	case !st.Mode().IsRegular() && !special:
		return &KeyfileError{path, ErrSpecialKeyfile}
	case st.Mode().IsRegular() && st.Size() > kdf.MaxKeyfileSize:
		return &KeyfileError{path, kdf.ErrKeyfileTooLarge}
	}
	return nil
}

// openKeyfile opens a keyfile for reading: a regular file, or with special
// anything but a directory. Without special it opens non-blocking and checks
// what it opened, so that nothing swapped in after a check (a FIFO) can make
// it wait.
func openKeyfile(path string, special bool) (*os.File, error) {
	flag := os.O_RDONLY | syscall.O_NOCTTY
	if !special {
		flag |= syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, &KeyfileError{path, err}
	}
	st, err := f.Stat()
	switch {
	case err != nil:
	case st.IsDir():
		err = errors.New("is a directory")
	case !st.Mode().IsRegular() && !special:
		err = ErrSpecialKeyfile
	}
	if err != nil {
		f.Close()
		return nil, &KeyfileError{path, err}
	}
	return f, nil
}

// v1Secret is the Argon2id input of a cryptvol v1 keyslot for s (§4.1), and
// whether it is empty: no passphrase, and no keyfile with any content. The
// caller wipes it.
func v1Secret(s Secret) (secret []byte, empty bool, err error) {
	if s.KeyfileOffset != 0 || s.KeyfileSize != 0 {
		return nil, false, errors.New("a keyfile offset or size applies to LUKS volumes only: cryptvol keyslots hash whole keyfiles")
	}
	if len(s.Keyfiles) > kdf.MaxKeyfiles {
		return nil, false, fmt.Errorf("%d keyfiles: at most %d are allowed", len(s.Keyfiles), kdf.MaxKeyfiles)
	}
	empty = len(s.Passphrase) == 0
	digests := make([][32]byte, 0, len(s.Keyfiles))
	defer clear(digests)
	for _, p := range s.Keyfiles {
		f, err := openKeyfile(p, s.SpecialKeyfiles)
		if err != nil {
			return nil, false, err
		}
		d, err := kdf.KeyfileDigest(f)
		f.Close()
		if err != nil {
			return nil, false, &KeyfileError{p, err}
		}
		empty = empty && d == kdf.EmptyKeyfile
		digests = append(digests, d)
	}
	secret, err = kdf.Secret(s.Passphrase, digests)
	return secret, empty, err
}

// keyslots is an unlocked container header of one format: what a Vault
// holds. Formats whose key management is not supported return
// errors.ErrUnsupported from those methods.
type keyslots interface {
	// masterKey is the master key, owned by the keyslots (close wipes it).
	masterKey() *memguard.LockedBuffer
	geometry() Geometry
	uuid() string
	// keyslot is the keyslot that opened it.
	keyslot() int
	addKey(ctx context.Context, s Secret, p kdf.Params, slot int) (int, error)
	changeKey(ctx context.Context, slot int, s Secret, p kdf.Params) error
	removeKey(slot int) error
	grow(ctx context.Context, newSize int64, fill Fill, progress func(done, total int64)) error
	// repair rewrites a damaged or older header copy from the current one.
	repair() error
	close() error
}

// detect says which format the file at path is in, from the magic of its
// header.
func detect(f io.ReaderAt) (Type, error) {
	var magic [8]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	switch {
	case string(magic[:]) == header.Magic:
		return TypeCryptvol, nil
	}
	switch v, err := luks.Detect(f); {
	case err == nil && v == 1:
		return TypeLUKS1, nil
	case err == nil:
		return TypeLUKS2, nil
	case errors.Is(err, luks.ErrUnsupported):
		return "", &damagedError{err}
	}
	// No magic at the start: a v1 vault whose primary copy is damaged is
	// still recognised by its backup copy at the end.
	return TypeCryptvol, nil
}

// v1Geometry is the geometry a cryptvol v1 header describes (§6): the tweak
// of a sector is its index in the data area.
func v1Geometry(h *header.Header) Geometry {
	return Geometry{
		Offset: int64(h.DataOffset), Size: int64(h.DataSize), SectorSize: int(h.SectorSize),
		Cipher: h.CipherName(), KeySize: header.MasterKeySize,
	}
}
