package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/tcrypt"
)

// VeraCrypt and TrueCrypt volumes (docs/VERACRYPT.md), through package
// tcrypt. Their headers have no magic in the clear, so the caller names the
// format (UnlockOptions.Type); the passphrase finds the header by trial
// decryption.

const (
	// TypeVeraCrypt is a VeraCrypt volume; TrueCrypt 6 and 7 volumes open
	// as one too, as in VeraCrypt's TrueCrypt mode.
	TypeVeraCrypt Type = "veracrypt"
	// TypeTrueCrypt is a TrueCrypt 5, 6 or 7 volume (XTS).
	TypeTrueCrypt Type = "truecrypt"
)

// TCryptOptions tune the unlocking of a VeraCrypt or TrueCrypt volume.
type TCryptOptions struct {
	// PRF, if not empty, is the only PRF tried (tcrypt.PRFNames).
	PRF string
	// PIM is VeraCrypt's personal iterations multiplier (0: none).
	PIM int
	// System opens a system-encryption volume in a disk image: the header
	// in the first track, the data in its partition. Read-only.
	System bool
	// BackupHeader uses the backup headers at the end of the volume, for a
	// volume whose primary header is damaged (VeraCrypt's "use backup
	// header embedded in volume").
	BackupHeader bool
	// ProtectHidden, if set, is the secret of the hidden volume inside the
	// outer volume being opened: writes that would reach the hidden
	// volume's data fail (see Geometry.Protected). ProtectPRF and
	// ProtectPIM are PRF and PIM for its header.
	ProtectHidden *Secret
	ProtectPRF    string
	ProtectPIM    int
}

// isTCrypt reports whether t is a VeraCrypt or TrueCrypt volume.
func isTCrypt(t Type) bool { return t == TypeVeraCrypt || t == TypeTrueCrypt }

func tcryptFormat(t Type) tcrypt.Format {
	if t == TypeTrueCrypt {
		return tcrypt.TrueCrypt
	}
	return tcrypt.VeraCrypt
}

// CheckKeyfilesAs is CheckKeyfiles for a container of type t: for a
// VeraCrypt or TrueCrypt volume a keyfile may be a directory, meaning the
// files in it, and of any size (only its first MiB counts).
func (s Secret) CheckKeyfilesAs(t Type) error {
	if !isTCrypt(t) {
		return s.CheckKeyfiles()
	}
	_, err := expandKeyfiles(s.Keyfiles, s.SpecialKeyfiles)
	return err
}

// expandKeyfiles checks VeraCrypt keyfiles without opening them and
// replaces each directory among paths by the keyfiles in it, as VeraCrypt
// does: the regular files directly inside, except hidden ones (a name
// starting with "."); a directory without one is an error. A keyfile that
// is not a regular file (a pipe, a device) needs special, as for a vault.
func expandKeyfiles(paths []string, special bool) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, &KeyfileError{p, err}
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() && !special {
				return nil, &KeyfileError{p, ErrSpecialKeyfile}
			}
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, &KeyfileError{p, err}
		}
		n := 0
		for _, e := range ents {
			full := filepath.Join(p, e.Name())
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if st, err := os.Stat(full); err != nil || !st.Mode().IsRegular() {
				continue
			}
			out = append(out, full)
			n++
		}
		if n == 0 {
			return nil, &KeyfileError{p, errors.New("directory holds no keyfile (hidden files are skipped)")}
		}
	}
	if len(out) > kdf.MaxKeyfiles {
		return nil, fmt.Errorf("%d keyfiles: at most %d are allowed", len(out), kdf.MaxKeyfiles)
	}
	return out, nil
}

// tcryptPassword is the password a VeraCrypt or TrueCrypt header key is
// derived from: the passphrase with the keyfiles' pool added (tcrypt.Password).
// The caller wipes it.
func tcryptPassword(f tcrypt.Format, s Secret) ([]byte, error) {
	paths, err := expandKeyfiles(s.Keyfiles, s.SpecialKeyfiles)
	if err != nil {
		return nil, err
	}
	var readers []io.Reader
	for _, p := range paths {
		kf, err := openKeyfile(p, s.SpecialKeyfiles)
		if err != nil {
			return nil, err
		}
		defer kf.Close()
		readers = append(readers, kf)
	}
	pw, err := tcrypt.Password(f, s.Passphrase, readers)
	if errors.Is(err, tcrypt.ErrPasswordTooLong) {
		return nil, &PassphraseError{err}
	}
	return pw, err
}

// newTCryptPassword is tcryptPassword for a new secret, refusing one that
// would be empty: no passphrase, and keyfiles that are all empty (any empty
// file would open the volume).
func newTCryptPassword(f tcrypt.Format, s Secret) ([]byte, error) {
	pw, err := tcryptPassword(f, s)
	if err != nil {
		return nil, err
	}
	if len(s.Passphrase) == 0 {
		var any byte
		for _, b := range pw {
			any |= b
		}
		if any == 0 {
			memguard.WipeBytes(pw)
			return nil, ErrEmptySecret
		}
	}
	return pw, nil
}

// PassphraseError is a passphrase the format cannot take (too long).
type PassphraseError struct{ Err error }

func (e *PassphraseError) Error() string { return e.Err.Error() }
func (e *PassphraseError) Unwrap() error { return e.Err }

// tcryptVault is an unlocked VeraCrypt or TrueCrypt header.
type tcryptVault struct {
	path     string
	f        *os.File
	writable bool
	ops      fileOps // the file, or a fault-injecting wrapper in tests
	typ      Type
	size     int64
	u        *tcrypt.Unlocked
	area     tcrypt.Area
	spec     cipher.Spec
	mk       *memguard.LockedBuffer
	protect  *Range
}

// unlockTCrypt finds the header s opens and, with ProtectHidden, the hidden
// volume's header too.
func unlockTCrypt(ctx context.Context, path string, typ Type, s Secret, opts *UnlockOptions) (*tcryptVault, error) {
	o := opts.TCrypt
	if o.System && !opts.ReadOnly {
		return nil, errors.New("system-encryption volumes open read-only only")
	}
	if o.System && o.ProtectHidden != nil {
		return nil, errors.New("hidden volume protection does not apply to system encryption")
	}
	format := tcryptFormat(typ)
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	v := &tcryptVault{path: path, f: f, writable: !opts.ReadOnly, ops: f, typ: typ}
	fail := func(err error) (*tcryptVault, error) {
		v.close()
		return nil, err
	}
	if v.size, err = fileSize(f); err != nil {
		return fail(err)
	}
	if v.size < tcrypt.HeaderSize {
		return fail(fmt.Errorf("%s: %w", path, damaged("file is %d bytes, shorter than one header", v.size)))
	}
	to := tcrypt.Options{Format: format, PRF: o.PRF, PIM: o.PIM, System: o.System, Backup: o.BackupHeader}
	if o.ProtectHidden != nil {
		to.Kinds = []tcrypt.Kind{tcrypt.Normal}
	}
	u, area, err := tcryptFind(ctx, f, v.size, s, to)
	if err != nil {
		return fail(tcryptError(path, err, "", o))
	}
	v.u, v.area = u, area
	if o.ProtectHidden != nil {
		to := tcrypt.Options{Format: format, PRF: o.ProtectPRF, PIM: o.ProtectPIM, Backup: o.BackupHeader, Kinds: []tcrypt.Kind{tcrypt.Hidden}}
		hu, harea, err := tcryptFind(ctx, f, v.size, *o.ProtectHidden, to)
		if err != nil {
			return fail(tcryptError(path, err, "the hidden volume's secret (to protect it)", o))
		}
		hu.Close()
		if harea.Offset < area.Offset || harea.End() > area.End() {
			return fail(fmt.Errorf("%s: %w", path, damaged("the hidden volume (bytes %d-%d) is not inside the outer volume (bytes %d-%d)", harea.Offset, harea.End(), area.Offset, area.End())))
		}
		v.protect = &Range{Offset: harea.Offset - area.Offset, Size: harea.Size}
	}
	v.spec, err = cipher.VeraCryptSpec(u.Algorithm)
	if err != nil {
		return fail(err)
	}
	v.mk = memguard.NewBufferFromBytes(append([]byte(nil), u.MasterKey()...))
	return v, nil
}

// tcryptFind runs the trial decryption with the password s makes and checks
// the header found against the file.
func tcryptFind(ctx context.Context, r io.ReaderAt, size int64, s Secret, to tcrypt.Options) (*tcrypt.Unlocked, tcrypt.Area, error) {
	pw, err := tcryptPassword(to.Format, s)
	if err != nil {
		return nil, tcrypt.Area{}, err
	}
	defer memguard.WipeBytes(pw)
	u, err := tcrypt.Unlock(ctx, r, size, pw, to)
	if err != nil {
		return nil, tcrypt.Area{}, err
	}
	area, err := u.Header.Area(u.Location, size)
	if err != nil {
		u.Close()
		return nil, tcrypt.Area{}, fmt.Errorf("the %s (%s, %s): %w", u.Location, u.KDF, u.Algorithm, err)
	}
	return u, area, nil
}

// tcryptError gives a failed trial decryption its class: a wrong secret
// (ErrWrongPassphrase), a header refused (ErrDamaged), or as it is.
func tcryptError(path string, err error, what string, o TCryptOptions) error {
	var he *tcrypt.HeaderError
	var le *tcrypt.LegacyError
	switch {
	case errors.Is(err, tcrypt.ErrWrongPassword):
		tried := "every PRF"
		if o.PRF != "" {
			tried = "PRF " + o.PRF
		}
		where := "primary"
		if o.BackupHeader {
			where = "backup"
		}
		if what == "" {
			what = "the passphrase"
		}
		return fmt.Errorf("%s: %w", path, &wrongSecretError{fmt.Sprintf("wrong passphrase: %s opens no %s header (tried %s)", what, where, tried)})
	case errors.As(err, &he), errors.As(err, &le):
		// A header cryptvol refuses, TrueCrypt 4's LRW and CBC included:
		// unsupported, exit 4.
		return fmt.Errorf("%s: %w", path, &damagedError{err})
	}
	return fmt.Errorf("%s: %w", path, err)
}

// wrongSecretError is a wrong passphrase told in a format's own words; it
// matches ErrWrongPassphrase.
type wrongSecretError struct{ msg string }

func (e *wrongSecretError) Error() string        { return e.msg }
func (e *wrongSecretError) Is(target error) bool { return target == ErrWrongPassphrase }

func (v *tcryptVault) masterKey() *memguard.LockedBuffer { return v.mk }
func (v *tcryptVault) uuid() string                      { return "" }

// keyslot is 0 for a volume's own header, 1 for a hidden volume's.
func (v *tcryptVault) keyslot() int {
	if v.u.Location.Kind == tcrypt.Hidden {
		return 1
	}
	return 0
}

func (v *tcryptVault) geometry() Geometry {
	return Geometry{
		Offset: v.area.Offset, Size: v.area.Size, SectorSize: tcrypt.UnitSize, IVOffset: v.area.IVOffset,
		Cipher: v.spec.String(), KeySize: v.spec.KeySize, Protected: v.protect,
	}
}

var errOneSecret = fmt.Errorf("%w: a VeraCrypt or TrueCrypt volume has one passphrase (a hidden volume has its own); change it with passwd", errors.ErrUnsupported)

func (v *tcryptVault) addKey(context.Context, Secret, kdf.Params, int) (int, error) {
	return -1, errOneSecret
}
func (v *tcryptVault) removeKey(int) error { return errOneSecret }

// changeKey keeps the PRF and the PIM-less iteration count.
func (v *tcryptVault) changeKey(ctx context.Context, _ int, s Secret, _ kdf.Params) error {
	return v.changeHeaderKey(ctx, s, HeaderKDF{})
}

// repair writes the header that opened the volume over its other copy (the
// backup, or the primary when the backup opened it), as VeraCrypt's "restore
// volume header from the backup embedded in the volume" does: the 512 bytes
// as they are, salt included, so both copies open with the same passphrase.
func (v *tcryptVault) repair() error {
	loc := v.u.Location
	if !v.writable {
		return errReadOnlyVault
	}
	if loc.Kind == tcrypt.System || v.u.Header.Version < 4 {
		return fmt.Errorf("%w: this %s header has no backup copy in the volume", errors.ErrUnsupported, loc.Kind)
	}
	copies := map[tcrypt.Kind][2]int64{
		tcrypt.Normal: {0, v.size - tcrypt.BackupAreaSize},
		tcrypt.Hidden: {tcrypt.HeaderAreaSize, v.size - tcrypt.HeaderAreaSize},
	}[loc.Kind]
	to := copies[1]
	if loc.Backup {
		to = copies[0]
	}
	raw := make([]byte, tcrypt.HeaderSize)
	if err := lockByte(v.f, headerLockByte, true, true); err != nil {
		return err
	}
	defer unlockByte(v.f, headerLockByte)
	if _, err := v.f.ReadAt(raw, loc.Offset); err != nil {
		return err
	}
	if _, err := v.ops.WriteAt(raw, to); err != nil {
		return fmt.Errorf("writing the header at %d: %w", to, err)
	}
	return v.ops.Sync()
}

func (v *tcryptVault) grow(context.Context, int64, Fill, func(done, total int64)) error {
	return fmt.Errorf("%w: resizing a VeraCrypt or TrueCrypt volume", errors.ErrUnsupported)
}

func (v *tcryptVault) close() error {
	if v.mk != nil {
		v.mk.Destroy()
		v.mk = nil
	}
	if v.u != nil {
		v.u.Close()
	}
	if v.f == nil {
		return nil
	}
	err := v.f.Close()
	v.f = nil
	return err
}

// HeaderKDF is how the header key of a VeraCrypt or TrueCrypt volume is
// derived: a PRF (tcrypt.PRFNames; "" keeps the current one) and a PIM (0:
// the PRF's default iteration count).
type HeaderKDF struct {
	PRF string
	PIM int
}

// ChangeHeaderKey re-encrypts the header that opened a VeraCrypt or
// TrueCrypt volume, and its backup, under the new secret s and key
// derivation p, keeping the master keys (the data is not rewritten). Opened
// as TypeVeraCrypt, a TrueCrypt 6 or 7 volume becomes a VeraCrypt one, as
// VeraCrypt's "Convert TrueCrypt volume" does.
//
// The primary header is written and synced, then the backup: a crash in
// between leaves the new secret in the primary and the old one in the
// backup (opened with TCryptOptions.BackupHeader), a crash while writing
// the primary the old one in the backup.
func (v *Vault) ChangeHeaderKey(ctx context.Context, s Secret, p HeaderKDF) error {
	t, ok := v.k.(*tcryptVault)
	if !ok {
		return fmt.Errorf("%w: %s vaults have keyslots; use ChangePassphrase", errors.ErrUnsupported, v.typ)
	}
	return t.changeHeaderKey(ctx, s, p)
}

func (v *tcryptVault) changeHeaderKey(ctx context.Context, s Secret, p HeaderKDF) error {
	if !v.writable {
		return errReadOnlyVault
	}
	loc := v.u.Location
	switch {
	case loc.Kind == tcrypt.System:
		return fmt.Errorf("%w: changing the passphrase of system encryption (VeraCrypt does it from the running system)", errors.ErrUnsupported)
	case v.u.Header.Version < 4:
		return fmt.Errorf("%w: changing the passphrase of a TrueCrypt 5 volume, which has no backup header to fall back on", errors.ErrUnsupported)
	}
	format := tcryptFormat(v.typ)
	h := *v.u.Header
	if format == tcrypt.VeraCrypt && h.Magic == tcrypt.MagicTrueCrypt {
		// Converted, as VeraCrypt's "Convert TrueCrypt volume" writes it:
		// a current header under VeraCrypt's magic and iteration counts.
		h.Magic, h.Version, h.MinProgramVersion = tcrypt.MagicVeraCrypt, 5, 0x010b
	}
	if format == tcrypt.TrueCrypt && p.PIM != 0 {
		return errors.New("TrueCrypt volumes have no PIM")
	}
	prf := p.PRF
	if prf == "" {
		prf = v.u.KDF.PRF
		if h.Magic == tcrypt.MagicVeraCrypt && prf == tcrypt.PRFRIPEMD160 {
			prf = tcrypt.PRFSHA512 // VeraCrypt 1.26 no longer opens RIPEMD-160 headers
		}
	}
	if canon, _ := tcrypt.CanonicalPRF(prf); canon == tcrypt.PRFRIPEMD160 && h.Magic == tcrypt.MagicVeraCrypt {
		return errors.New("VeraCrypt 1.26 no longer opens headers with PRF ripemd160: choose another")
	}
	kdfs, err := tcrypt.KDFs(format, prf, p.PIM, false)
	if err != nil {
		return err
	}
	var k *tcrypt.KDF
	for i := range kdfs {
		if kdfs[i].TrueCrypt == (h.Magic == tcrypt.MagicTrueCrypt) {
			k = &kdfs[i]
			break
		}
	}
	if k == nil {
		return fmt.Errorf("a %s volume cannot use PRF %s", format, prf)
	}
	pw, err := newTCryptPassword(format, s)
	if err != nil {
		return err
	}
	defer memguard.WipeBytes(pw)
	// Each copy gets a salt of its own, as VeraCrypt writes them.
	var copies [2][]byte
	for i := range copies {
		salt, err := tcrypt.NewSalt()
		if err != nil {
			return err
		}
		if copies[i], err = tcrypt.Seal(ctx, &h, v.u.Keys(), pw, salt, *k, v.u.Algorithm); err != nil {
			return err
		}
	}
	primary, backup := int64(0), v.size-tcrypt.BackupAreaSize
	if loc.Kind == tcrypt.Hidden {
		primary, backup = tcrypt.HeaderAreaSize, v.size-tcrypt.HeaderAreaSize
	}
	if err := lockByte(v.f, headerLockByte, true, true); err != nil {
		return err
	}
	defer unlockByte(v.f, headerLockByte)
	for i, off := range []int64{primary, backup} {
		if _, err := v.ops.WriteAt(copies[i], off); err != nil {
			return fmt.Errorf("writing the header at %d: %w", off, err)
		}
		if err := v.ops.Sync(); err != nil {
			return fmt.Errorf("writing the header at %d: %w", off, err)
		}
	}
	v.u.Header = &h
	v.u.KDF = *k
	return nil
}

// checkGivenGeometry checks a geometry handed over with a key (OpenWithKey)
// against the file: the trust is in whoever unlocked the header, but a
// geometry that does not fit the file is refused all the same.
func checkGivenGeometry(f *os.File, path string, g *Geometry) (Geometry, error) {
	if g == nil {
		return Geometry{}, fmt.Errorf("%s: no geometry given with the key", path)
	}
	size, err := fileSize(f)
	if err != nil {
		return Geometry{}, err
	}
	bad := func(format string, args ...any) (Geometry, error) {
		return Geometry{}, fmt.Errorf("%s: %w", path, damaged("geometry given with the key: "+format, args...))
	}
	switch {
	case g.SectorSize != 512 && g.SectorSize != 4096:
		return bad("sector size %d", g.SectorSize)
	case g.Offset < 0 || g.Size <= 0 || g.Offset%int64(g.SectorSize) != 0 || g.Size%int64(g.SectorSize) != 0:
		return bad("data area of %d bytes at %d", g.Size, g.Offset)
	case g.Size > size || g.Offset > size-g.Size:
		return bad("data area of %d bytes at %d is past the end of the %d-byte file", g.Size, g.Offset, size)
	case g.Protected != nil && (g.Protected.Offset < 0 || g.Protected.Size <= 0 || g.Protected.Offset > g.Size-g.Protected.Size):
		return bad("protected range of %d bytes at %d is not inside the data area", g.Protected.Size, g.Protected.Offset)
	}
	return *g, nil
}

// TCryptInfo is what the header that opened a VeraCrypt or TrueCrypt volume
// says, and how it was opened.
type TCryptInfo struct {
	Magic             string `json:"magic"` // "VERA" or "TRUE"
	Version           int    `json:"header_version"`
	MinProgramVersion string `json:"min_program_version"` // e.g. "1.11"
	// Header is "normal", "hidden" or "system"; Backup says it was the
	// backup header; Offset is where it lies in the file.
	Header     string `json:"header"`
	Backup     bool   `json:"backup,omitempty"`
	Offset     int64  `json:"header_offset"`
	PRF        string `json:"prf"`
	Iterations uint32 `json:"iterations"` // of PBKDF2, or Argon2id's passes
	MemoryKiB  uint32 `json:"memory_kib,omitempty"`
	// Algorithm is the encryption algorithm as VeraCrypt names it.
	Algorithm  string `json:"algorithm"`
	Flags      uint32 `json:"flags"`
	SectorSize uint32 `json:"sector_size"`
}

// TCryptInfo describes the header of an unlocked VeraCrypt or TrueCrypt
// volume; ok is false for other formats.
func (v *Vault) TCryptInfo() (info TCryptInfo, ok bool) {
	t, ok := v.k.(*tcryptVault)
	if !ok || t.u == nil {
		return TCryptInfo{}, false
	}
	h, u := t.u.Header, t.u
	return TCryptInfo{
		Magic: h.Magic, Version: int(h.Version),
		MinProgramVersion: programVersion(h.MinProgramVersion),
		Header:            u.Location.Kind.String(), Backup: u.Location.Backup, Offset: u.Location.Offset,
		PRF: u.KDF.PRF, Iterations: u.KDF.Iterations, MemoryKiB: u.KDF.MemoryKiB,
		Algorithm: u.Algorithm, Flags: h.Flags, SectorSize: h.SectorSize,
	}, true
}

// programVersion renders a VeraCrypt or TrueCrypt program version as they
// write it: 0x010b is 1.0b, 0x071a 7.1a, 0x0700 7.0, 0x0126 1.26.
func programVersion(v uint16) string {
	minor := fmt.Sprintf("%02x", v&0xff)
	if minor[1] == '0' {
		minor = minor[:1]
	}
	return fmt.Sprintf("%x.%s", v>>8, minor)
}
