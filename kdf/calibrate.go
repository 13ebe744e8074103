package kdf

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"time"
)

// DefaultMemory is the memory cost the CLI uses unless told otherwise: 1 GiB, but
// at most half the physical memory (docs/FORMAT.md §5).
func DefaultMemory() uint32 {
	m := uint32(1 << 20)
	if phys := physicalMemory(); phys != 0 && phys/2/1024 < uint64(m) {
		m = max(uint32(phys/2/1024), MinMemory)
	}
	return m
}

// DefaultThreads is min(4, CPUs).
func DefaultThreads() uint32 {
	return uint32(min(4, max(runtime.NumCPU(), 1)))
}

// Calibrate returns parameters with the given memory and threads and the number
// of iterations that makes one derivation take about target on this machine: it
// times one pass and scales, rounding to the nearest count, at least 1 and within
// MaxIterations and MaxWork.
func Calibrate(target time.Duration, memory, threads uint32) (Params, error) {
	p := Params{Memory: memory, Iterations: 1, Threads: threads}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	if target <= 0 {
		return Params{}, fmt.Errorf("target time %v is not positive", target)
	}
	pass, err := Measure(p)
	if err != nil {
		return Params{}, err
	}
	n := math.Round(float64(target) / float64(max(pass, time.Microsecond)))
	limit := min(float64(MaxIterations), float64(MaxWork/uint64(memory)))
	p.Iterations = uint32(max(1, min(n, limit)))
	return p, p.Validate()
}

// Measure returns how long one derivation with p takes on this machine, on a
// fixed passphrase and salt: the time an unlock with a keyslot of these
// parameters spends in Argon2id, not counting the wiping and unmapping of its
// memory afterwards (paid once per derivation, it would make Calibrate count
// it once per pass). It refuses what Derive refuses, before any work starts.
func Measure(p Params) (time.Duration, error) {
	if err := checkParams(p); err != nil {
		return 0, err
	}
	salt := make([]byte, 32)
	start := time.Now()
	k, cleanup, err := argon2Derive(context.Background(), modeArgon2id, []byte("cryptvol calibration"), salt, nil, nil, p.Iterations, p.Memory, p.Threads, KeySize)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	cleanup() // once per unlock, not per pass: not timed
	k.Destroy()
	return d, nil
}
