package cipher

import (
	"crypto/rand"
	"testing"
)

// BenchmarkSectorCiphers measures every spec of BenchmarkSpecs (AES on the
// fast path, the others generic) and two VeraCrypt cascades as VeraCrypt
// uses them: 4 KiB requests of 512-byte data units, encryption and
// decryption. Run with -bench SectorCiphers to compare them in one run.
func BenchmarkSectorCiphers(b *testing.B) {
	specs := BenchmarkSpecs()
	for _, name := range []string{"AES-Twofish-Serpent", "Camellia-Kuznyechik"} {
		s, err := VeraCryptSpec(name)
		if err != nil {
			b.Fatal(err)
		}
		specs = append(specs, s)
	}
	for _, spec := range specs {
		key := make([]byte, spec.KeySize)
		rand.Read(key)
		s, err := NewSector(spec, key, make([]byte, spec.StateSize()), 512)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 4096)
		for _, op := range []struct {
			name string
			f    func(dst, src []byte, sector uint64)
		}{{"encrypt", s.Encrypt}, {"decrypt", s.Decrypt}} {
			b.Run(spec.String()+"/"+op.name, func(b *testing.B) {
				b.SetBytes(int64(len(buf)))
				var sector uint64
				for b.Loop() {
					op.f(buf, buf, sector)
					sector += 8
				}
			})
		}
	}
}
