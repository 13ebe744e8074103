//go:build !purego

package cipher

import "unsafe"

// schedule holds the AES-256 round keys of the assembly paths. It lives inside the
// caller's state memory (see newSchedule) and nowhere else: the assembly reads the
// round keys from it on every call, so they are never copied to the Go heap.
//
// Layout, 16 bytes per round key:
//
//	offset   0: data key, encryption round keys 0…14
//	offset 240: data key, decryption round keys 0…14 for AESDEC (the encryption
//	            round keys in reverse order, the middle 13 passed through AESIMC)
//	offset 480: tweak key, encryption round keys 0…14
type schedule [scheduleSize]byte

const (
	scheduleSize = 3 * 15 * 16

	// scheduleAlign is the alignment of the schedule inside state. 16 would
	// suffice for the SSE memory operands of the AES-NI path; 64 keeps every
	// round key inside one cache line.
	scheduleAlign = 64
)

// The layout must fit in StateSize wherever the caller's state starts.
const _ = uint(StateSize - scheduleSize - (scheduleAlign - 1))

// newSchedule expands the 64-byte XTS key into state, which must be StateSize
// bytes, and returns the schedule inside it. state is not necessarily aligned
// (it is the caller's memory), so the schedule starts at its first 64-byte
// boundary.
func newSchedule(key, state []byte) *schedule {
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(state))) & (scheduleAlign - 1))
	ks := (*schedule)(state[off : off+scheduleSize])
	expandKey(ks, (*[KeySize]byte)(key))
	return ks
}

// expandKey writes the round keys of key (the data key, then the tweak key) into
// ks. It is in keys_amd64.s and needs AES-NI.
//
//go:noescape
func expandKey(ks *schedule, key *[KeySize]byte)
