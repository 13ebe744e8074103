//go:build amd64

// Command aesrate measures what bounds an AES implementation on this machine: the
// core clock while busy, and how many AES instructions issue per cycle and with
// what latency. docs/PERFORMANCE.md turns cipher throughput into cycles per block
// with these figures.
//
// The clock comes from a chain of dependent 64-bit ADDs (one per cycle on every
// x86-64 core); the AES figures from loops of eight independent chains (issue
// rate) and of one chain (latency). Each loop runs five times and the fastest
// run counts, since other load only slows a run down.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Loops in loops_amd64.s; each runs n iterations of 16 instructions.
func addChain(n int)
func aesencXMM(n int)
func vaesencYMM(n int)
func vaesencYMMChain(n int)

func fastest(f func(int), n int) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 5 {
		t := time.Now()
		f(n)
		best = min(best, time.Since(t))
	}
	return best
}

func main() {
	const n = 20_000_000
	ghz := 16 * n / fastest(addChain, n).Seconds() / 1e9
	perCycle := func(f func(int)) float64 { return 16 * n / fastest(f, n).Seconds() / 1e9 / ghz }
	fmt.Printf("clock %.2f GHz; AESENC xmm %.2f/cycle", ghz, perCycle(aesencXMM))
	if hasFlags("vaes", "avx2") {
		latency := 1 / perCycle(vaesencYMMChain)
		fmt.Printf("; VAESENC ymm %.2f/cycle, latency %.1f cycles", perCycle(vaesencYMM), latency)
	}
	fmt.Println()
}

// hasFlags reports whether /proc/cpuinfo lists all the flags, so that the VAES
// loops are not run where they would fault.
func hasFlags(names ...string) bool {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			fields := strings.Fields(v)
			for _, name := range names {
				found := false
				for _, f := range fields {
					found = found || f == name
				}
				if !found {
					return false
				}
			}
			return true
		}
	}
	return false
}
