package cipher

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Spec names a sector cipher as dm-crypt and cryptsetup do: a block cipher
// (or a VeraCrypt cascade of them), a mode and an IV generator, and the key
// size. Its text form (String, ParseSpec) is dm-crypt's cipher string, e.g.
// "aes-xts-plain64", "aes-cbc-essiv:sha256" or, for a cascade,
// "serpent-twofish-aes-xts-plain64" (cryptsetup's tcrypt spelling).
//
// Accepted:
//   - Ciphers: "aes", "serpent", "twofish", "camellia" (each with 128-, 192-
//     or 256-bit keys) and "kuznyechik" (256-bit).
//   - Mode "xts" (IEEE 1619, each sector one data unit) with IV "plain64"
//     (the 64-bit little-endian sector number) or "plain" (its low 32 bits,
//     dm-crypt's original IV); the key is the data key followed by the tweak
//     key, KeySize = 2 × the cipher's key size.
//   - Mode "cbc" with IV "plain64", "plain" or "essiv:sha256" (dm-crypt's
//     ESSIV: the IV is the sector number, as "plain64", encrypted with the same
//     block cipher under SHA-256 of the key); KeySize is the cipher's key size.
//   - Cascades (more than one cipher): mode "xts" only, as VeraCrypt and
//     TrueCrypt apply them (see NewSector).
//
// Everything else is refused with a *SpecError.
type Spec struct {
	// Ciphers are the block ciphers, in the order they are applied when
	// encrypting; one for LUKS, up to three for a VeraCrypt cascade.
	Ciphers []string
	Mode    string // "xts" or "cbc"
	IV      string // "plain64", "plain" or "essiv:sha256"
	// KeySize is the whole key in bytes, as LUKS stores it (key_bytes,
	// the segment's key size) or as VeraCrypt's master key area holds it.
	KeySize int
}

// ErrUnsupported is the class of every *SpecError: errors.Is(err,
// ErrUnsupported) tells a cipher cryptvol cannot run from other failures.
var ErrUnsupported = errors.New("cryptvol/cipher: unsupported cipher")

// SpecError is returned for a cipher specification cryptvol does not run: an
// unknown cipher, mode or IV generator, a key size the cipher does not take,
// or a malformed string.
type SpecError struct {
	Spec   string // the specification as given
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("cryptvol/cipher: unsupported cipher %q: %s", e.Spec, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *SpecError) Is(target error) bool { return target == ErrUnsupported }

// maxSpecLen bounds a cipher string before it is split: LUKS keeps its cipher
// in 32-byte fields, LUKS2 in JSON of any length.
const maxSpecLen = 128

// ParseSpec parses dm-crypt's cipher string s (LUKS2's segment "encryption",
// or LUKS1's cipher_name and cipher_mode joined by "-") for a key of keySize
// bytes and checks that cryptvol can run it.
func ParseSpec(s string, keySize int) (Spec, error) {
	if len(s) > maxSpecLen {
		return Spec{}, &SpecError{Spec: s[:maxSpecLen] + "...", Reason: "too long"}
	}
	parts := strings.Split(strings.ToLower(s), "-")
	if len(parts) < 3 {
		return Spec{}, &SpecError{Spec: s, Reason: `not of the form "cipher-mode-iv"`}
	}
	n := len(parts)
	spec := Spec{Ciphers: parts[:n-2], Mode: parts[n-2], IV: parts[n-1], KeySize: keySize}
	if err := spec.validate(s); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// String returns the dm-crypt cipher string, e.g. "aes-xts-plain64".
func (s Spec) String() string {
	return strings.Join(append(slices.Clone(s.Ciphers), s.Mode, s.IV), "-")
}

// Validate checks that NewSector can run s.
func (s Spec) Validate() error { return s.validate(s.String()) }

func (s Spec) validate(text string) error {
	fail := func(format string, args ...any) error {
		return &SpecError{Spec: text, Reason: fmt.Sprintf(format, args...)}
	}
	if len(s.Ciphers) == 0 || len(s.Ciphers) > 3 {
		return fail("%d ciphers: one, or a cascade of two or three, is supported", len(s.Ciphers))
	}
	for _, c := range s.Ciphers {
		if _, ok := lookupBlock(c); !ok {
			return fail("unknown block cipher %q (known: %s)", c, strings.Join(BlockCiphers(), ", "))
		}
	}
	var perCipher int
	switch s.Mode {
	case "xts":
		if s.IV != "plain64" && s.IV != "plain" {
			return fail(`IV generator %q: xts takes "plain64" or "plain"`, s.IV)
		}
		if s.KeySize <= 0 || s.KeySize%(2*len(s.Ciphers)) != 0 {
			return fail("a %d-byte key does not split into a data and a tweak key per cipher", s.KeySize)
		}
		perCipher = s.KeySize / (2 * len(s.Ciphers))
	case "cbc":
		if len(s.Ciphers) != 1 {
			return fail("cascades are supported in xts mode only")
		}
		if s.IV != "plain64" && s.IV != "plain" && s.IV != "essiv:sha256" {
			return fail(`IV generator %q: cbc takes "plain64", "plain" or "essiv:sha256"`, s.IV)
		}
		perCipher = s.KeySize
	default:
		return fail(`mode %q: "xts" and "cbc" are supported`, s.Mode)
	}
	for _, c := range s.Ciphers {
		d, _ := lookupBlock(c)
		if !slices.Contains(d.keySizes, perCipher) {
			return fail("%s takes %s-byte keys, not %d", c, joinInts(d.keySizes), perCipher)
		}
		if s.IV == "essiv:sha256" && !slices.Contains(d.keySizes, 32) {
			return fail("essiv:sha256 needs a 32-byte key for %s", c)
		}
	}
	return nil
}

func joinInts(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, "/")
}

// BlockCiphers returns the names of the block ciphers a Spec can use.
func BlockCiphers() []string {
	var names []string
	for _, d := range blockDefs {
		names = append(names, d.name)
	}
	return names
}

// fastPath reports whether s is XTS-AES-256 with a 64-bit sector number, the
// one case the assembly implementations serve.
func (s Spec) fastPath() bool {
	return len(s.Ciphers) == 1 && s.Ciphers[0] == "aes" && s.Mode == "xts" && s.KeySize == KeySize
}

// StateSize returns the bytes of caller memory NewSector needs for s's round
// keys (0 for a spec it cannot run). It includes the slack for alignment, so
// the memory may start anywhere.
func (s Spec) StateSize() int {
	if s.Validate() != nil {
		return 0
	}
	if s.fastPath() {
		return StateSize
	}
	n := 0
	for _, c := range s.Ciphers {
		n += layerStateSize(c, s.Mode, s.KeySize/len(s.Ciphers))
	}
	return n
}

// layerStateSize is the memory one cipher of a spec needs: two schedules in
// XTS (data and tweak key; the fast path's for AES-256), one in CBC plus the
// ESSIV cipher's.
func layerStateSize(name, mode string, keySize int) int {
	if mode == "xts" && name == "aes" && keySize == KeySize {
		return StateSize
	}
	d, _ := lookupBlock(name)
	return 2 * d.stateSize
}
