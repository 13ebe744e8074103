package tcrypt

import (
	"context"
	stdpbkdf2 "crypto/pbkdf2"
	"testing"

	"github.com/cryptvol/cryptvol/kdf"
)

func BenchmarkKDF(b *testing.B) {
	for _, prf := range []string{"sha512", "whirlpool", "sha256", "blake2s", "streebog", "ripemd160", "argon2id"} {
		b.Run(prf, func(b *testing.B) {
			k := KDF{PRF: prf, Iterations: 10000}
			if prf == "argon2id" {
				k = KDF{PRF: prf, Iterations: 6, MemoryKiB: 425984}
			}
			for b.Loop() {
				buf, err := k.Derive(context.Background(), []byte("password"), make([]byte, 64))
				if err != nil {
					b.Fatal(err)
				}
				buf.Destroy()
			}
		})
	}
	b.Run("std-sha512", func(b *testing.B) {
		h, _ := kdf.Hash("sha512")
		for b.Loop() {
			stdpbkdf2.Key(h, "password", make([]byte, 64), 10000, 192)
		}
	})
}
