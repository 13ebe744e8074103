package cipher

// plain32 gives an inner Sector that uses the full 64-bit sector number
// dm-crypt's "plain" IV: the sector number truncated to its low 32 bits, so
// that sector 2^32 uses the IV of sector 0. A request crossing such a boundary
// is split there.
type plain32 struct {
	inner Sector
}

func (p *plain32) SectorSize() int        { return p.inner.SectorSize() }
func (p *plain32) Implementation() string { return p.inner.Implementation() + "+plain" }

func (p *plain32) Encrypt(dst, src []byte, sector uint64) { p.run(p.inner.Encrypt, dst, src, sector) }
func (p *plain32) Decrypt(dst, src []byte, sector uint64) { p.run(p.inner.Decrypt, dst, src, sector) }

func (p *plain32) run(f func(dst, src []byte, sector uint64), dst, src []byte, sector uint64) {
	ss := p.inner.SectorSize()
	checkBuffers(dst, src, ss, sector)
	for len(src) > 0 {
		lo := uint64(uint32(sector))
		n := min(uint64(len(src)/ss), 1<<32-lo)
		f(dst[:n*uint64(ss)], src[:n*uint64(ss)], lo)
		dst, src = dst[n*uint64(ss):], src[n*uint64(ss):]
		sector += n
	}
}
