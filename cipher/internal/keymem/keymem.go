// Package keymem lays expanded round keys out in memory the caller provides
// (typically locked memguard memory), so that the block ciphers written for
// cryptvol keep no copy of them on the Go heap.
//
// The memory must hold no Go pointers and stay allocated and unmodified while a
// cipher made from it is in use; its owner is the one to wipe it.
package keymem

import (
	"fmt"
	"unsafe"
)

// Align is the alignment of the words inside the caller's memory: a whole
// cache line, so that a small schedule never straddles two.
const Align = 64

// Size returns the bytes of caller memory that words elements of size bytes
// each need wherever the memory starts.
func Size(words, size int) int { return words*size + Align - 1 }

// Uint32s returns n uint32s inside state, starting at its first Align
// boundary.
func Uint32s(state []byte, n int) ([]uint32, error) {
	p, err := place(state, n*4)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*uint32)(p), n), nil
}

// Uint64s returns n uint64s inside state, starting at its first Align
// boundary.
func Uint64s(state []byte, n int) ([]uint64, error) {
	p, err := place(state, n*8)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*uint64)(p), n), nil
}

func place(state []byte, size int) (unsafe.Pointer, error) {
	if len(state) == 0 {
		return nil, fmt.Errorf("cryptvol/cipher: key state must be at least %d bytes, got 0", size+Align-1)
	}
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(state))) & (Align - 1))
	if len(state) < off+size {
		return nil, fmt.Errorf("cryptvol/cipher: key state must be at least %d bytes, got %d", size+Align-1, len(state))
	}
	return unsafe.Pointer(&state[off]), nil
}
