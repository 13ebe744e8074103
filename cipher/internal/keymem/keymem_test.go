package keymem

import (
	"testing"
	"unsafe"
)

func TestPlacement(t *testing.T) {
	mem := make([]byte, Size(10, 8)+Align)
	for off := range Align {
		state := mem[off : off+Size(10, 8)]
		w, err := Uint64s(state, 10)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		p := uintptr(unsafe.Pointer(&w[0]))
		if p%Align != 0 {
			t.Fatalf("offset %d: words at %#x are not %d-aligned", off, p, Align)
		}
		start := uintptr(unsafe.Pointer(&state[0]))
		if p < start || p+80 > start+uintptr(len(state)) {
			t.Fatalf("offset %d: words outside the state", off)
		}
		if _, err := Uint32s(state[:Size(10, 8)-Align], 20); off%Align != 0 && err == nil {
			t.Fatalf("offset %d: a state without its alignment slack was accepted", off)
		}
	}
	if _, err := Uint32s(nil, 1); err == nil {
		t.Fatal("an empty state was accepted")
	}
}
