package cipher

// BenchmarkSpecs returns the sector ciphers `cryptvol benchmark` measures
// next to the fast path: each block cipher in XTS with two 256-bit keys (the
// way VeraCrypt uses them all, and LUKS's 512-bit xts keys), AES first (the
// fast path), then the generic ones in the order of BlockCiphers. Make each
// with NewSector, a random key of KeySize bytes and a state of StateSize().
func BenchmarkSpecs() []Spec {
	var specs []Spec
	for _, d := range blockDefs {
		specs = append(specs, Spec{Ciphers: []string{d.name}, Mode: "xts", IV: "plain64", KeySize: 64})
	}
	return specs
}
