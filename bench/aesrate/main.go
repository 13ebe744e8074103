//go:build amd64

// Command aesrate measures what bounds an AES implementation on this machine: the
// core clock while busy, and how many AES instructions issue per cycle and with
// what latency. docs/PERFORMANCE.md turns cipher throughput into cycles per block
// with these figures.
//
// The clock comes from a chain of dependent register-to-register ADDs, one cycle
// each on every x86-64 core, Intel and AMD. (An earlier version added an
// immediate, and read a 21.54 GHz clock on an Intel Xeon: recent Intel cores
// evidently resolve chains of ADD reg, imm at register renaming, several per
// cycle.) A chain of dependent IMULs, three cycles each on both vendors,
// measures it a second way; when the two disagree by more than 10% (boost
// clocks move by a few per cent from one run to the next) aesrate says so and
// exits with status 1 rather than print a wrong clock. A third loop runs the
// ADD chain beside 512-bit VAESENCs, for the clock while AVX-512 code runs
// (some Intel cores lower it). The AES figures come from loops of eight
// independent chains (issue rate) and of one chain (latency), of AESENC on XMM
// and VAESENC on YMM and ZMM registers, each where the CPU has it. Every loop
// runs 500 times for a millisecond or two and the fastest run counts, since
// other load only slows a run down. perf's cycle counter would do as well, but
// virtual machines often lack it.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Loops in loops_amd64.s; each runs n iterations of 16 instructions.
func addChain(n int)
func imulChain(n int)
func addChainZMM(n int)
func aesencXMM(n int)
func vaesencYMM(n int)
func vaesencYMMChain(n int)
func vaesencZMM(n int)
func vaesencZMMChain(n int)

// fastest returns the shortest of many runs of f(n). Each run is short (a
// millisecond or two) and there are many, so that on a busy machine some run
// the whole time without being preempted: other load only slows a run down.
func fastest(f func(int), n int) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 500 {
		t := time.Now()
		f(n)
		best = min(best, time.Since(t))
	}
	return best
}

const n = 100_000

// perNS returns how many of f's instructions complete per nanosecond.
func perNS(f func(int)) float64 { return 16 * n / fastest(f, n).Seconds() / 1e9 }

func main() {
	f := cpuFlags()
	addGHz := perNS(addChain)
	imulGHz := 3 * perNS(imulChain)
	if d := addGHz / imulGHz; d < 0.9 || d > 1.1 {
		fmt.Printf("clock unknown: a chain of ADDs gives %.2f GHz, a chain of IMULs %.2f GHz\n", addGHz, imulGHz)
		os.Exit(1)
	}
	ghz := addGHz
	fmt.Printf("clock %.2f GHz (ADD chain; IMUL chain %.2f GHz)", ghz, imulGHz)
	zmm := f["avx512f"] && f["vaes"]
	zghz := ghz // the clock while 512-bit instructions run
	if zmm {
		zghz = perNS(addChainZMM)
		fmt.Printf("; %.2f GHz beside 512-bit VAESENC", zghz)
	}
	fmt.Println()
	fmt.Printf("AESENC xmm %.2f/cycle\n", perNS(aesencXMM)/ghz)
	if f["vaes"] && f["avx2"] {
		r := perNS(vaesencYMM) / ghz
		fmt.Printf("VAESENC ymm %.2f/cycle (%.2f block rounds), latency %.1f cycles\n", r, 2*r, ghz/perNS(vaesencYMMChain))
	}
	if zmm {
		r := perNS(vaesencZMM) / zghz
		fmt.Printf("VAESENC zmm %.2f/cycle (%.2f block rounds), latency %.1f cycles\n", r, 4*r, zghz/perNS(vaesencZMMChain))
	}
}

// cpuFlags returns the flags /proc/cpuinfo lists, so that the VAES loops are
// not run where they would fault (the kernel lists avx512f only where it
// enables the ZMM state).
func cpuFlags() map[string]bool {
	flags := map[string]bool{}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return flags
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, name := range strings.Fields(v) {
				flags[name] = true
			}
			break
		}
	}
	return flags
}
