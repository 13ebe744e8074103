package tcrypt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// Format says whose headers to look for: VeraCrypt's or TrueCrypt's.
type Format int

const (
	// VeraCrypt: VeraCrypt 1.26's PRFs and iteration counts, "VERA"
	// headers; and, as VeraCrypt's TrueCrypt mode did, the headers of
	// TrueCrypt 6 and 7 ("TRUE", version 4 and 5) with TrueCrypt's PRFs.
	VeraCrypt Format = iota
	// TrueCrypt: TrueCrypt 5 to 7 ("TRUE", versions 3 to 5).
	TrueCrypt
)

func (f Format) String() string {
	if f == TrueCrypt {
		return "TrueCrypt"
	}
	return "VeraCrypt"
}

// PRF names, as --prf takes them.
const (
	PRFSHA512    = "sha512"
	PRFWhirlpool = "whirlpool"
	PRFSHA256    = "sha256"
	PRFBLAKE2s   = "blake2s"
	PRFStreebog  = "streebog"
	PRFRIPEMD160 = "ripemd160"
	PRFArgon2id  = "argon2id"
)

// prfDef is one PRF and its iteration counts (docs/VERACRYPT.md, "Key
// derivation"), from VeraCrypt's get_pkcs5_iteration_count and TrueCrypt 7's
// Pkcs5.c. A zero count means the PRF is not used there.
type prfDef struct {
	name    string
	aliases []string
	hash    string // kdf.Hash name; "" for Argon2id
	// VeraCrypt, without PIM: normal volumes and system encryption.
	vc, vcBoot uint32
	// With PIM p: vcPIMConst + p×1000 for normal volumes (and for system
	// encryption if vcBootPIM is false), p×2048 for system encryption
	// with vcBootPIM.
	vcBootPIM bool
	// vcOptIn: VeraCrypt 1.26 dropped it; tried only when named by --prf.
	vcOptIn bool
	// TrueCrypt: normal volumes and system encryption.
	tc, tcBoot uint32
}

const vcPIMConst = 15000

// prfs is the table, in the order Unlock tries them: the cheapest and the
// most used first (SHA-512 is VeraCrypt's default), Streebog, by far the
// slowest here, last.
var prfs = []prfDef{
	{name: PRFSHA512, aliases: []string{"sha-512", "hmac-sha-512"}, hash: "sha512", vc: 500000, vcBoot: 500000, tc: 1000},
	{name: PRFSHA256, aliases: []string{"sha-256", "hmac-sha-256"}, hash: "sha256", vc: 500000, vcBoot: 200000, vcBootPIM: true},
	{name: PRFArgon2id, aliases: []string{"argon2"}},
	{name: PRFWhirlpool, aliases: []string{"hmac-whirlpool"}, hash: "whirlpool", vc: 500000, vcBoot: 500000, tc: 1000},
	{name: PRFBLAKE2s, aliases: []string{"blake2s-256", "hmac-blake2s-256", "hmac-blake2s"}, hash: "blake2s-256", vc: 500000, vcBoot: 200000, vcBootPIM: true},
	{name: PRFStreebog, aliases: []string{"streebog512", "stribog512", "stribog", "hmac-streebog"}, hash: "streebog512", vc: 500000, vcBoot: 200000, vcBootPIM: true},
	{name: PRFRIPEMD160, aliases: []string{"ripemd-160", "hmac-ripemd-160"}, hash: "ripemd160", vc: 655331, vcBoot: 327661, vcBootPIM: true, vcOptIn: true, tc: 2000, tcBoot: 1000},
}

// PRFNames returns the names --prf takes, in the order they are tried.
func PRFNames() []string {
	var n []string
	for _, p := range prfs {
		n = append(n, p.name)
	}
	return n
}

// lookupPRF finds a PRF by name or alias, any case.
func lookupPRF(name string) (prfDef, bool) {
	n := strings.ToLower(name)
	for _, p := range prfs {
		if p.name == n || slices.Contains(p.aliases, n) {
			return p, true
		}
	}
	return prfDef{}, false
}

// CanonicalPRF returns the canonical name of a PRF given by name or alias.
func CanonicalPRF(name string) (string, error) {
	p, ok := lookupPRF(name)
	if !ok {
		return "", fmt.Errorf("unknown PRF %q (known: %s)", name, strings.Join(PRFNames(), ", "))
	}
	return p.name, nil
}

// PIM bounds. VeraCrypt accepts a PIM up to 2147468 (so that 15000 + PIM ×
// 1000 fits an int32) and up to 65535 for system encryption; cryptvol stops
// lower, where package kdf's bounds are: 2^27 PBKDF2 iterations (about a
// minute of SHA-256; PIM 134202, and every system PIM fits) and, for
// Argon2id, kdf.MaxWork (64 passes over 1 GiB: PIM 82).
const (
	MaxPIM         = (kdf.MaxPBKDF2Iterations - vcPIMConst) / 1000
	MaxSystemPIM   = 65535
	MaxArgon2idPIM = kdf.MaxWork/(1<<20) + 18
)

// Argon2id parameters of VeraCrypt (1.26.27 and later): one lane, the
// memory and passes given by the PIM (12 by default: 416 MiB, 6 passes).
const (
	argon2DefaultPIM = 12
	argon2Threads    = 1
)

// KDF is one header key derivation to try: a PRF with its cost.
type KDF struct {
	PRF string // a name of PRFNames
	// Iterations of PBKDF2, or the passes of Argon2id.
	Iterations uint32
	// MemoryKiB is Argon2id's memory (0 for PBKDF2).
	MemoryKiB uint32
	// TrueCrypt marks TrueCrypt's iteration counts, whose headers have the
	// "TRUE" magic.
	TrueCrypt bool
}

func (k KDF) String() string {
	if k.PRF == PRFArgon2id {
		return fmt.Sprintf("argon2id m=%s t=%d p=%d", kibString(k.MemoryKiB), k.Iterations, argon2Threads)
	}
	return fmt.Sprintf("pbkdf2-%s iterations=%d", k.PRF, k.Iterations)
}

func kibString(k uint32) string {
	if k%1024 == 0 {
		return fmt.Sprintf("%dM", k/1024)
	}
	return fmt.Sprintf("%dK", k)
}

// argon2Params gives VeraCrypt's Argon2id passes and memory (KiB) for a PIM
// (0: the default), as cryptsetup's tcrypt.c reproduces them.
func argon2Params(pim int) (passes, memKiB uint32) {
	if pim == 0 {
		pim = argon2DefaultPIM
	}
	if pim <= 31 {
		return uint32((pim-1)/3 + 3), uint32(1024 * (64 + (pim-1)*32))
	}
	return uint32(pim - 18), 1 << 20
}

// KDFs returns the key derivations to try for a volume of format f, in the
// order they are tried: every PRF of the format, or only prf if not empty; with the iteration counts of pim (0: the default) and of system
// encryption if system. A PIM is VeraCrypt's alone: with one, TrueCrypt's
// counts are not tried.
func KDFs(f Format, prf string, pim int, system bool) ([]KDF, error) {
	var only *prfDef
	if prf != "" {
		p, ok := lookupPRF(prf)
		if !ok {
			return nil, fmt.Errorf("unknown PRF %q (known: %s)", prf, strings.Join(PRFNames(), ", "))
		}
		only = &p
	}
	maxPIM := MaxPIM
	if system {
		maxPIM = MaxSystemPIM
	}
	switch {
	case pim < 0:
		return nil, fmt.Errorf("PIM %d: must not be negative", pim)
	case pim > maxPIM:
		return nil, fmt.Errorf("PIM %d: above %d, the most cryptvol derives a key with", pim, maxPIM)
	case pim > 0 && f == TrueCrypt:
		return nil, errors.New("TrueCrypt volumes have no PIM")
	}
	// TrueCrypt's counts first: a thousand or two iterations, they cost
	// next to nothing before VeraCrypt's hundreds of thousands.
	var out []KDF
	if pim == 0 {
		for _, p := range prfs {
			n := p.tc
			if system {
				n = p.tcBoot
			}
			if n == 0 || only != nil && p.name != only.name {
				continue
			}
			out = append(out, KDF{PRF: p.name, Iterations: n, TrueCrypt: true})
		}
	}
	if f == VeraCrypt {
		for _, p := range prfs {
			if only != nil && p.name != only.name || only == nil && p.vcOptIn {
				continue
			}
			if p.name == PRFArgon2id {
				if pim > MaxArgon2idPIM {
					if only != nil {
						return nil, fmt.Errorf("PIM %d: above %d, the most cryptvol derives Argon2id with (PIM − 18 passes over 1 GiB)", pim, MaxArgon2idPIM)
					}
					continue
				}
				t, m := argon2Params(pim)
				out = append(out, KDF{PRF: p.name, Iterations: t, MemoryKiB: m})
				continue
			}
			n := p.vc
			if system {
				n = p.vcBoot
			}
			if pim > 0 {
				if system && p.vcBootPIM {
					n = uint32(pim) * 2048
				} else {
					n = vcPIMConst + uint32(pim)*1000
				}
			}
			out = append(out, KDF{PRF: p.name, Iterations: n})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %svolumes do not use PRF %s", f, map[bool]string{true: "system ", false: ""}[system], only.name)
	}
	return out, nil
}

// checkEvery is how many PBKDF2 iterations run between two checks of the
// context: a cancelled derivation stops within milliseconds.
const checkEvery = 4096

// Derive returns the HeaderKeySize-byte header key for password and salt, in
// locked memory owned by the caller, with package kdf's PBKDF2 and Argon2id:
// it stops within milliseconds once ctx is cancelled, refuses parameters
// beyond kdf's bounds before any work, and takes part in the kdf.Session ctx
// carries (its Work charged to the unlock's budget first, a derivation the
// session did already not done again).
func (k KDF) Derive(ctx context.Context, password, salt []byte) (*memguard.LockedBuffer, error) {
	if k.PRF == PRFArgon2id {
		a := kdf.Argon2{Variant: kdf.Argon2id, Memory: k.MemoryKiB, Iterations: k.Iterations, Threads: argon2Threads}
		return a.Derive(ctx, password, salt, HeaderKeySize)
	}
	h, ok := prfHash(k.PRF)
	if !ok {
		return nil, fmt.Errorf("tcrypt: unknown PRF %q", k.PRF)
	}
	return kdf.PBKDF2{Hash: h, Iterations: k.Iterations}.Derive(ctx, password, salt, HeaderKeySize)
}

// Work is what a derivation costs in kdf's units, as kdf charges it to a
// kdf.Session's budget: Argon2id's memory × passes; for PBKDF2 one unit
// per iteration per output block.
func (k KDF) Work() kdf.Work {
	if k.PRF == PRFArgon2id {
		return kdf.Work(k.MemoryKiB) * kdf.Work(k.Iterations)
	}
	name, ok := prfHash(k.PRF)
	if !ok {
		return 0
	}
	h, err := kdf.Hash(name)
	if err != nil {
		return 0
	}
	size := h().Size()
	return kdf.Work(k.Iterations) * kdf.Work((HeaderKeySize+size-1)/size)
}

// prfHash returns the kdf.Hash name of a PBKDF2 PRF, TrueCrypt 4's SHA-1
// included.
func prfHash(prf string) (string, bool) {
	if p, ok := lookupPRF(prf); ok && p.hash != "" {
		return p.hash, true
	}
	for _, p := range legacyPRFs {
		if p.name == prf {
			return p.hash, true
		}
	}
	return "", false
}
