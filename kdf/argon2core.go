package kdf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/awnumar/memguard"
	"golang.org/x/crypto/blake2b"
)

// This is Argon2 (RFC 9106, version 0x13) written for cryptvol rather than
// golang.org/x/crypto/argon2, for what a key derivation in a disk encryption
// tool needs and that package cannot give:
//
//   - It stops within milliseconds when its context is cancelled (a hostile
//     header may ask for a minute of work per keyslot, and Ctrl-C must work).
//   - Its working memory is mapped outside the Go heap (memLinux), locked
//     where the process may lock that much, excluded from core dumps, and
//     wiped and unmapped as soon as the derivation ends, instead of staying
//     in the heap until the garbage collector reuses it.
//   - Everything from which the key could be computed without the working
//     memory (H0, the first blocks of each lane, the last ones' XOR) and the
//     key itself are written only into locked memory (memguard); the BLAKE2b
//     states that held them are reset and overwritten.
//
// The code follows the RFC section by section; the comments name them.

// Argon2 types (RFC 9106 §3.1 "y").
const (
	modeArgon2i  = 1
	modeArgon2id = 2
)

const (
	argonVersion    = 0x13
	argonSyncPoints = 4 // slices per pass (§3.4)
	argonBlockWords = 128
	argonBlockBytes = 8 * argonBlockWords
	// argonCheckEvery is how many blocks a lane computes between two looks
	// at the stop flag: 256 KiB, well under a millisecond.
	argonCheckEvery = 256
)

type argonBlock [argonBlockWords]uint64

// argonState is one derivation's parameters and working memory.
type argonState struct {
	mode            uint32
	passes, lanes   uint32
	blocks          uint32 // m' (§3.2 step 3)
	laneLen, segLen uint32
	mem             []argonBlock
	stop            atomic.Bool
	// filled is how many blocks of each lane have been written (all, once
	// the first pass is over): what wipe overwrites.
	filled []uint32
}

// argon2Key returns n bytes of Argon2 output for password and salt (and the
// optional secret key and associated data of §3.1, used by the RFC's test
// vectors) in a new locked buffer. The parameters must have been checked by
// the caller: memory ≥ 8·threads KiB, at least one pass and one lane, n ≥ 4.
// It returns ctx.Err() soon after ctx is cancelled.
func argon2Key(ctx context.Context, mode uint32, password, salt, secretKey, data []byte, passes, memory, threads uint32, n int) (*memguard.LockedBuffer, error) {
	k, cleanup, err := argon2Derive(ctx, mode, password, salt, secretKey, data, passes, memory, threads, n)
	if cleanup != nil {
		cleanup()
	}
	return k, err
}

// argon2Derive is argon2Key without the wiping and unmapping of the working
// memory at the end, which it leaves to cleanup (nil when it failed: then it
// is under way already): Measure times the derivation alone, since an unlock
// pays for it once, not once per pass.
func argon2Derive(ctx context.Context, mode uint32, password, salt, secretKey, data []byte, passes, memory, threads uint32, n int) (k *memguard.LockedBuffer, cleanup func(), err error) {
	if passes < 1 || threads < 1 || memory < 8*threads || n < 4 {
		return nil, nil, fmt.Errorf("cryptvol/kdf: argon2 parameters t=%d m=%d p=%d n=%d out of range", passes, memory, threads, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	a := &argonState{mode: mode, passes: passes, lanes: threads}
	// §3.2 step 3: m' = 4p·floor(m/4p).
	a.blocks = memory / (argonSyncPoints * threads) * (argonSyncPoints * threads)
	a.laneLen = a.blocks / threads
	a.segLen = a.laneLen / argonSyncPoints
	mem, release, err := allocArgonMemory(int(a.blocks))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInsufficientMemory, err)
	}
	a.mem = mem
	a.filled = make([]uint32, threads)

	// Locked scratch: H0 with its two counters (§3.2 steps 1, 5, 6), one
	// block as bytes, and one BLAKE2b output for H'.
	scratch := memguard.NewBuffer(blake2b.Size + 8 + argonBlockBytes + blake2b.Size)
	defer scratch.Destroy()
	sb := scratch.Bytes()
	h0, blockBytes, v := sb[:blake2b.Size+8], sb[blake2b.Size+8:blake2b.Size+8+argonBlockBytes], sb[blake2b.Size+8+argonBlockBytes:]

	a.initHash(h0, password, salt, secretKey, data, memory, n)
	for lane := uint32(0); lane < a.lanes; lane++ {
		for j := uint32(0); j < 2; j++ {
			binary.LittleEndian.PutUint32(h0[blake2b.Size:], j)
			binary.LittleEndian.PutUint32(h0[blake2b.Size+4:], lane)
			hPrime(blockBytes, h0, v)
			loadBlock(&a.mem[lane*a.laneLen+j], blockBytes)
		}
		a.filled[lane] = 2
	}
	clear(h0)

	if err := a.fill(ctx); err != nil {
		// Interrupted: return at once, and wipe what was written and give
		// the memory back meanwhile (a process that exits now leaves that
		// to the kernel, which clears pages before it reuses them).
		clear(blockBytes)
		go func() {
			a.wipe()
			release()
		}()
		return nil, nil, err
	}
	cleanup = func() {
		a.wipe()
		release()
	}

	// §3.2 step 7: C is the XOR of the last block of every lane; the tag is
	// H'^T(C).
	c := &a.mem[a.laneLen-1]
	for lane := uint32(1); lane < a.lanes; lane++ {
		last := &a.mem[lane*a.laneLen+a.laneLen-1]
		for i := range c {
			c[i] ^= last[i]
		}
	}
	storeBlock(blockBytes, c)
	clear(c[:])
	out := memguard.NewBuffer(n)
	// BLAKE2b's Sum leaves the tag, the key, in its stack frames.
	OnCleanStack(func() { hPrime(out.Bytes(), blockBytes, v) })
	clear(blockBytes)
	clear(v)
	return out, cleanup, nil
}

// wipe overwrites every block the derivation wrote: all of them once the
// first pass is over, and in the first pass what each lane reached.
func (a *argonState) wipe() {
	for lane, n := range a.filled {
		start := uint32(lane) * a.laneLen
		clear(a.mem[start : start+n])
	}
}

// initHash computes H0 (§3.2 step 1) into h0[:64].
func (a *argonState) initHash(h0, password, salt, secretKey, data []byte, memory uint32, n int) {
	h, _ := blake2b.New512(nil)
	defer wipeBLAKE2b(h)
	var w [4]byte
	put := func(x uint32) {
		binary.LittleEndian.PutUint32(w[:], x)
		h.Write(w[:])
	}
	put(a.lanes)
	put(uint32(n))
	put(memory)
	put(a.passes)
	put(argonVersion)
	put(a.mode)
	for _, b := range [][]byte{password, salt, secretKey, data} {
		put(uint32(len(b)))
		h.Write(b)
	}
	h.Sum(h0[:0])
}

// hPrime is the variable-length hash H' of §3.3, writing len(out) bytes; v is
// 64 bytes of scratch (locked memory) for the intermediate values.
func hPrime(out, in, v []byte) {
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], uint32(len(out)))
	if len(out) <= blake2b.Size {
		h, _ := blake2b.New(len(out), nil)
		h.Write(t[:])
		h.Write(in)
		h.Sum(out[:0])
		wipeBLAKE2b(h)
		return
	}
	h, _ := blake2b.New512(nil)
	defer wipeBLAKE2b(h)
	h.Write(t[:])
	h.Write(in)
	h.Sum(v[:0]) // V1
	copy(out, v[:32])
	out = out[32:]
	for len(out) > blake2b.Size { // V2 … Vr
		h.Reset()
		h.Write(v)
		h.Sum(v[:0])
		copy(out, v[:32])
		out = out[32:]
	}
	last, _ := blake2b.New(len(out), nil) // V(r+1), T − 32r bytes
	last.Write(v)
	last.Sum(out[:0])
	wipeBLAKE2b(last)
}

// wipeBLAKE2b resets h and overwrites the input it buffered: golang.org/x/crypto
// keeps the chaining value and the last input block in the object, which
// together give its output.
func wipeBLAKE2b(h hash.Hash) {
	h.Reset()
	var zero [blake2b.BlockSize]byte
	h.Write(zero[:])
	h.Reset()
}

func loadBlock(b *argonBlock, in []byte) {
	for i := range b {
		b[i] = binary.LittleEndian.Uint64(in[8*i:])
	}
}

func storeBlock(out []byte, b *argonBlock) {
	for i, w := range b {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
}

// errStopped ends the lanes of a cancelled derivation.
var errStopped = errors.New("stopped")

// fill computes every pass over memory (§3.2 steps 5–6, §3.4): slice by
// slice, the lanes in parallel, synchronised between slices.
func (a *argonState) fill(ctx context.Context) error {
	watch := context.AfterFunc(ctx, func() { a.stop.Store(true) })
	defer watch()
	var wg sync.WaitGroup
	for pass := uint32(0); pass < a.passes; pass++ {
		for slice := uint32(0); slice < argonSyncPoints; slice++ {
			if a.lanes == 1 {
				a.segment(pass, slice, 0)
			} else {
				for lane := uint32(0); lane < a.lanes; lane++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						a.segment(pass, slice, lane)
					}()
				}
				wg.Wait()
			}
			if a.stop.Load() {
				if err := ctx.Err(); err != nil {
					return err
				}
				return errStopped
			}
		}
	}
	return nil
}

// segment computes one segment of one lane (§3.4).
func (a *argonState) segment(pass, slice, lane uint32) {
	independent := a.mode == modeArgon2i || (a.mode == modeArgon2id && pass == 0 && slice < argonSyncPoints/2)
	var address, input, zero argonBlock
	if independent {
		// §3.4.2: the input block of the address generator.
		input[0], input[1], input[2] = uint64(pass), uint64(lane), uint64(slice)
		input[3], input[4], input[5] = uint64(a.blocks), uint64(a.passes), uint64(a.mode)
	}
	nextAddresses := func() {
		input[6]++
		compress(&address, &zero, &input, false)
		compress(&address, &zero, &address, false)
	}
	index := uint32(0)
	if pass == 0 && slice == 0 {
		index = 2 // the first two blocks come from H0
		if independent {
			nextAddresses()
		}
	}
	laneStart := lane * a.laneLen
	col := slice*a.segLen + index
	defer func() {
		if pass == 0 {
			a.filled[lane] = col // the first pass writes a lane in order
		} else {
			a.filled[lane] = a.laneLen
		}
	}()
	for ; index < a.segLen; index, col = index+1, col+1 {
		if index%argonCheckEvery == 0 && a.stop.Load() {
			return
		}
		prev := col - 1
		if col == 0 {
			prev = a.laneLen - 1 // the first block of a lane follows its last
		}
		var rand uint64
		if independent {
			if index%argonBlockWords == 0 {
				nextAddresses()
			}
			rand = address[index%argonBlockWords]
		} else {
			rand = a.mem[laneStart+prev][0]
		}
		refLane, refCol := a.reference(rand, pass, slice, lane, index)
		compress(&a.mem[laneStart+col], &a.mem[laneStart+prev], &a.mem[refLane*a.laneLen+refCol], pass > 0)
	}
}

// reference maps a pseudo-random value to the block the next one depends on
// (§3.4.1.1, §3.4.1.2).
func (a *argonState) reference(rand uint64, pass, slice, lane, index uint32) (uint32, uint32) {
	j1, j2 := uint32(rand), uint32(rand>>32)
	refLane := j2 % a.lanes
	if pass == 0 && slice == 0 {
		refLane = lane
	}
	// The blocks that may be referenced: the finished segments of the
	// reference lane (in the first pass only those before this slice), and,
	// in this lane, the blocks of this segment before the previous one; the
	// last block of the area is left out when it is the previous block.
	area := 3 * a.segLen
	start := uint32(0)
	if pass == 0 {
		area = slice * a.segLen
	} else {
		start = ((slice + 1) % argonSyncPoints) * a.segLen
	}
	if refLane == lane {
		area += index - 1
	} else if index == 0 {
		area--
	}
	x := uint64(j1) * uint64(j1) >> 32
	y := uint64(area) * x >> 32
	rel := uint64(area) - 1 - y
	return refLane, uint32((uint64(start) + rel) % uint64(a.laneLen))
}

// compressGeneric sets out = G(x, y), or with xor out ^= G(x, y) (§3.5): R =
// x ⊕ y, P applied to R's rows and then its columns, then XOR with R. out may
// be x or y. compress is this, or the same in assembly (argon2_amd64.s).
func compressGeneric(out, x, y *argonBlock, xor bool) {
	var r, q argonBlock
	for i := range r {
		r[i] = x[i] ^ y[i]
	}
	q = r
	for i := 0; i < argonBlockWords; i += 16 {
		permute(&q[i], &q[i+1], &q[i+2], &q[i+3], &q[i+4], &q[i+5], &q[i+6], &q[i+7],
			&q[i+8], &q[i+9], &q[i+10], &q[i+11], &q[i+12], &q[i+13], &q[i+14], &q[i+15])
	}
	for i := 0; i < 16; i += 2 {
		permute(&q[i], &q[i+1], &q[i+16], &q[i+17], &q[i+32], &q[i+33], &q[i+48], &q[i+49],
			&q[i+64], &q[i+65], &q[i+80], &q[i+81], &q[i+96], &q[i+97], &q[i+112], &q[i+113])
	}
	if xor {
		for i := range out {
			out[i] ^= r[i] ^ q[i]
		}
	} else {
		for i := range out {
			out[i] = r[i] ^ q[i]
		}
	}
}

// permute is P of §3.6 on sixteen 64-bit words: GB on the columns, then on the
// diagonals of the 4×4 matrix they form. GB is BLAKE2b's G with each addition
// a + b replaced by a + b + 2·trunc(a)·trunc(b); it is written out eight times
// because the compiler does not inline it, and the calls cost half the time.
func permute(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15 *uint64) {
	v0, v1, v2, v3, v4, v5, v6, v7 := *p0, *p1, *p2, *p3, *p4, *p5, *p6, *p7
	v8, v9, v10, v11, v12, v13, v14, v15 := *p8, *p9, *p10, *p11, *p12, *p13, *p14, *p15
	v0 += v4 + 2*uint64(uint32(v0))*uint64(uint32(v4))
	v12 ^= v0
	v12 = v12>>32 | v12<<32
	v8 += v12 + 2*uint64(uint32(v8))*uint64(uint32(v12))
	v4 ^= v8
	v4 = v4>>24 | v4<<40
	v0 += v4 + 2*uint64(uint32(v0))*uint64(uint32(v4))
	v12 ^= v0
	v12 = v12>>16 | v12<<48
	v8 += v12 + 2*uint64(uint32(v8))*uint64(uint32(v12))
	v4 ^= v8
	v4 = v4>>63 | v4<<1
	v1 += v5 + 2*uint64(uint32(v1))*uint64(uint32(v5))
	v13 ^= v1
	v13 = v13>>32 | v13<<32
	v9 += v13 + 2*uint64(uint32(v9))*uint64(uint32(v13))
	v5 ^= v9
	v5 = v5>>24 | v5<<40
	v1 += v5 + 2*uint64(uint32(v1))*uint64(uint32(v5))
	v13 ^= v1
	v13 = v13>>16 | v13<<48
	v9 += v13 + 2*uint64(uint32(v9))*uint64(uint32(v13))
	v5 ^= v9
	v5 = v5>>63 | v5<<1
	v2 += v6 + 2*uint64(uint32(v2))*uint64(uint32(v6))
	v14 ^= v2
	v14 = v14>>32 | v14<<32
	v10 += v14 + 2*uint64(uint32(v10))*uint64(uint32(v14))
	v6 ^= v10
	v6 = v6>>24 | v6<<40
	v2 += v6 + 2*uint64(uint32(v2))*uint64(uint32(v6))
	v14 ^= v2
	v14 = v14>>16 | v14<<48
	v10 += v14 + 2*uint64(uint32(v10))*uint64(uint32(v14))
	v6 ^= v10
	v6 = v6>>63 | v6<<1
	v3 += v7 + 2*uint64(uint32(v3))*uint64(uint32(v7))
	v15 ^= v3
	v15 = v15>>32 | v15<<32
	v11 += v15 + 2*uint64(uint32(v11))*uint64(uint32(v15))
	v7 ^= v11
	v7 = v7>>24 | v7<<40
	v3 += v7 + 2*uint64(uint32(v3))*uint64(uint32(v7))
	v15 ^= v3
	v15 = v15>>16 | v15<<48
	v11 += v15 + 2*uint64(uint32(v11))*uint64(uint32(v15))
	v7 ^= v11
	v7 = v7>>63 | v7<<1
	v0 += v5 + 2*uint64(uint32(v0))*uint64(uint32(v5))
	v15 ^= v0
	v15 = v15>>32 | v15<<32
	v10 += v15 + 2*uint64(uint32(v10))*uint64(uint32(v15))
	v5 ^= v10
	v5 = v5>>24 | v5<<40
	v0 += v5 + 2*uint64(uint32(v0))*uint64(uint32(v5))
	v15 ^= v0
	v15 = v15>>16 | v15<<48
	v10 += v15 + 2*uint64(uint32(v10))*uint64(uint32(v15))
	v5 ^= v10
	v5 = v5>>63 | v5<<1
	v1 += v6 + 2*uint64(uint32(v1))*uint64(uint32(v6))
	v12 ^= v1
	v12 = v12>>32 | v12<<32
	v11 += v12 + 2*uint64(uint32(v11))*uint64(uint32(v12))
	v6 ^= v11
	v6 = v6>>24 | v6<<40
	v1 += v6 + 2*uint64(uint32(v1))*uint64(uint32(v6))
	v12 ^= v1
	v12 = v12>>16 | v12<<48
	v11 += v12 + 2*uint64(uint32(v11))*uint64(uint32(v12))
	v6 ^= v11
	v6 = v6>>63 | v6<<1
	v2 += v7 + 2*uint64(uint32(v2))*uint64(uint32(v7))
	v13 ^= v2
	v13 = v13>>32 | v13<<32
	v8 += v13 + 2*uint64(uint32(v8))*uint64(uint32(v13))
	v7 ^= v8
	v7 = v7>>24 | v7<<40
	v2 += v7 + 2*uint64(uint32(v2))*uint64(uint32(v7))
	v13 ^= v2
	v13 = v13>>16 | v13<<48
	v8 += v13 + 2*uint64(uint32(v8))*uint64(uint32(v13))
	v7 ^= v8
	v7 = v7>>63 | v7<<1
	v3 += v4 + 2*uint64(uint32(v3))*uint64(uint32(v4))
	v14 ^= v3
	v14 = v14>>32 | v14<<32
	v9 += v14 + 2*uint64(uint32(v9))*uint64(uint32(v14))
	v4 ^= v9
	v4 = v4>>24 | v4<<40
	v3 += v4 + 2*uint64(uint32(v3))*uint64(uint32(v4))
	v14 ^= v3
	v14 = v14>>16 | v14<<48
	v9 += v14 + 2*uint64(uint32(v9))*uint64(uint32(v14))
	v4 ^= v9
	v4 = v4>>63 | v4<<1
	*p0, *p1, *p2, *p3, *p4, *p5, *p6, *p7 = v0, v1, v2, v3, v4, v5, v6, v7
	*p8, *p9, *p10, *p11, *p12, *p13, *p14, *p15 = v8, v9, v10, v11, v12, v13, v14, v15
}
