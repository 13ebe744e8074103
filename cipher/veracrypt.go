package cipher

import (
	"slices"
	"strings"
)

// veraCryptAlgorithms are VeraCrypt 1.26's encryption algorithms by its own
// names, in the order of its EncryptionAlgorithms table (src/Common/Crypto.c).
// The first eight are TrueCrypt 7's as well. A VeraCrypt name lists the
// ciphers from the last applied to the first: "AES-Twofish-Serpent" encrypts
// with Serpent, then Twofish, then AES.
var veraCryptAlgorithms = []string{
	"AES", "Serpent", "Twofish", "Camellia", "Kuznyechik",
	"AES-Twofish", "AES-Twofish-Serpent", "Serpent-AES", "Serpent-Twofish-AES", "Twofish-Serpent",
	"Camellia-Kuznyechik", "Kuznyechik-Twofish", "Camellia-Serpent", "Kuznyechik-AES",
	"Kuznyechik-Serpent-Camellia",
}

// VeraCryptAlgorithms returns the names of VeraCrypt's encryption algorithms
// (XTS mode, 256-bit keys for every cipher), in the order VeraCrypt lists and
// tries them; the first eight are also TrueCrypt 7's.
func VeraCryptAlgorithms() []string { return slices.Clone(veraCryptAlgorithms) }

// VeraCryptSpec returns the Spec of a VeraCrypt encryption algorithm named as
// VeraCrypt names it (any case), e.g. "AES", "Serpent-Twofish-AES": XTS with
// 64-bit sector numbers (VeraCrypt's 512-byte data unit numbers) and a
// 64-byte key per cipher, the ciphers in the order they are applied (the
// reverse of the name). Its key is VeraCrypt's master key area as it is
// stored in the volume header: the ciphers' data keys, then their tweak keys.
func VeraCryptSpec(name string) (Spec, error) {
	i := slices.IndexFunc(veraCryptAlgorithms, func(n string) bool { return strings.EqualFold(n, name) })
	if i < 0 {
		return Spec{}, &SpecError{Spec: name, Reason: "not a VeraCrypt encryption algorithm (known: " + strings.Join(veraCryptAlgorithms, ", ") + ")"}
	}
	names := strings.Split(strings.ToLower(veraCryptAlgorithms[i]), "-")
	slices.Reverse(names)
	return Spec{Ciphers: names, Mode: "xts", IV: "plain64", KeySize: 64 * len(names)}, nil
}
