package cipher

import (
	"bytes"
	"crypto/rand"
	"syscall"
	"testing"
)

// guarded returns n bytes that end where an inaccessible page begins, so that
// touching one byte past them faults.
func guarded(t *testing.T, n int) []byte {
	page := syscall.Getpagesize()
	size := (n+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return mem[size-page-n : size-page]
}

// TestBufferEndsAtGuardPage checks that no implementation reads or writes past
// the end of its buffers: vaes-avx512 ends a sector with a masked load and
// store of a whole vector, which must touch only the blocks in the mask.
func TestBufferEndsAtGuardPage(t *testing.T) {
	forEachImpl(t, func(t *testing.T, impl string) {
		key := randomKey(t)
		for blocks := 1; blocks <= 20; blocks++ {
			ss := blocks * BlockSize
			for _, sectors := range []int{1, 3} {
				n := sectors * ss
				src, dst := guarded(t, n), guarded(t, n)
				rand.Read(src)
				x := newCipher(t, impl, key, ss)
				for _, decrypt := range []bool{false, true} {
					want := reference(t, key, src, ss, 5, decrypt)
					op := x.Encrypt
					if decrypt {
						op = x.Decrypt
					}
					op(dst, src, 5)
					if !bytes.Equal(dst, want) {
						t.Fatalf("%d-byte sectors, decrypt=%v: differs from x/crypto/xts", ss, decrypt)
					}
					op(src, src, 5) // in place
					if !bytes.Equal(src, want) {
						t.Fatalf("%d-byte sectors, decrypt=%v, in place: differs from x/crypto/xts", ss, decrypt)
					}
					rand.Read(src)
				}
			}
		}
	})
}
