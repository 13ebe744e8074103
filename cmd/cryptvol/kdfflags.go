package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/kdf"
)

// kdfFlags choose the Argon2id parameters of a new keyslot: calibrated to a
// target time by default, or set exactly.
type kdfFlags struct {
	time       time.Duration
	memory     string
	iterations uint32
	threads    uint32
}

func (k *kdfFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.DurationVar(&k.time, "kdf-time", 2*time.Second, "target unlock time: the iterations are calibrated to it on this machine")
	f.StringVar(&k.memory, "kdf-memory", "", "Argon2id memory cost, e.g. 1G, 256M (default 1G, at most half the physical memory)")
	f.Uint32Var(&k.iterations, "kdf-iterations", 0, "Argon2id iterations, exactly (instead of calibrating to --kdf-time)")
	f.Uint32Var(&k.threads, "kdf-threads", 0, "Argon2id threads (default min(4, CPUs))")
}

// params resolves the flags, calibrating when no iteration count is given.
func (k *kdfFlags) params(c *cobra.Command) (kdf.Params, error) {
	if c.Flags().Changed("kdf-time") && c.Flags().Changed("kdf-iterations") {
		return kdf.Params{}, &usageError{"--kdf-time and --kdf-iterations are alternatives: give one"}
	}
	p := kdf.Params{Memory: kdf.DefaultMemory(), Threads: kdf.DefaultThreads(), Iterations: k.iterations}
	if k.memory != "" {
		b, err := parseSize(k.memory)
		if err != nil {
			return kdf.Params{}, &usageError{"--kdf-memory: " + err.Error()}
		}
		if b%1024 != 0 || b/1024 > 1<<32-1 {
			return kdf.Params{}, &usageError{fmt.Sprintf("--kdf-memory %s: must be a whole number of KiB", k.memory)}
		}
		p.Memory = uint32(b / 1024)
	}
	if k.threads != 0 {
		p.Threads = k.threads
	}
	if k.iterations == 0 {
		if c.Flags().Changed("kdf-iterations") {
			return kdf.Params{}, &usageError{"--kdf-iterations must be at least 1"}
		}
		if k.time <= 0 {
			return kdf.Params{}, &usageError{"--kdf-time must be positive"}
		}
		cal, err := kdf.Calibrate(k.time, p.Memory, p.Threads)
		if err != nil {
			return kdf.Params{}, &usageError{"key derivation parameters: " + err.Error()}
		}
		return cal, nil
	}
	if err := p.Validate(); err != nil {
		return kdf.Params{}, &usageError{"key derivation parameters: " + err.Error()}
	}
	return p, nil
}

// weakHint explains a weak keyslot (kdf.Params.Weak, docs/FORMAT.md §5).
const weakHint = "a weak keyslot's key derivation (below 64 MiB of memory and 3 passes, RFC 9106's minimum for memory-constrained use) makes each guess at its passphrase cheap; `cryptvol passwd FILE --slot N` without --kdf-memory and --kdf-iterations re-derives it with the calibrated default (1 GiB, about 2 s)"

// warnWeak warns when a new keyslot's parameters are weak.
func (u *ui) warnWeak(path string, slot int, p kdf.Params) {
	if p.Weak() {
		u.warnf("%s: keyslot %d is weak (%s): guessing its passphrase is cheap", path, slot, p)
		u.hintf("%s", weakHint)
	}
}
