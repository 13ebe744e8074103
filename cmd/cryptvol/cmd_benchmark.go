package main

import (
	"context"
	"crypto/aes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/xts"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/kdf"
)

// benchJSON is one result of `cryptvol benchmark --json`; field names are
// stable. A cipher result has impl, op ("encrypt" or "decrypt"), sector_size,
// request_size, mib_per_s and selected, and cipher for the comparison of
// sector ciphers; an Argon2id result has impl "argon2id", op "derive",
// seconds, memory_kib, iterations and threads.
type benchJSON struct {
	Impl string `json:"impl"`
	Op   string `json:"op"`
	// Cipher is set on the results comparing the sector ciphers
	// (cipher.BenchmarkSpecs), in dm-crypt's spelling.
	Cipher string `json:"cipher,omitempty"`

	SectorSize  int     `json:"sector_size,omitempty"`
	RequestSize int     `json:"request_size,omitempty"`
	MiBPerS     float64 `json:"mib_per_s,omitempty"`
	// Selected marks the implementation cipher.New picks on this CPU, the
	// one vaults are opened with: exactly one cipher result per op,
	// sector_size and request_size.
	Selected bool `json:"selected"`

	Seconds    float64 `json:"seconds,omitempty"`
	MemoryKiB  uint32  `json:"memory_kib,omitempty"`
	Iterations uint32  `json:"iterations,omitempty"`
	Threads    uint32  `json:"threads,omitempty"`
	// Default marks the Argon2id parameters create uses unless told
	// otherwise, at one iteration (the unit --kdf-time scales).
	Default bool `json:"default,omitempty"`
}

// xtsReference names golang.org/x/crypto/xts in the results: the portable
// implementation cryptvol's cipher package is measured against.
const xtsReference = "golang.org/x/crypto/xts"

// benchShapes are the cipher cases: one call per sector as `openssl speed
// -bytes N` makes them, and a 128 KiB request of 4 KiB sectors, the size a
// block device request usually has.
var benchShapes = []struct{ sector, request int }{{512, 512}, {4096, 4096}, {4096, 128 << 10}}

func newBenchmarkCommand(u *ui) *cobra.Command {
	var (
		asJSON  bool
		seconds float64
		memory  string
		iters   uint32
		threads uint32
	)
	c := &cobra.Command{
		Use:   "benchmark",
		Short: "Measure the cipher and key derivation speed of this machine",
		Long: `Measure XTS-AES-256 throughput on one core with every implementation this CPU
can run, and golang.org/x/crypto/xts for reference, for 512-byte and 4 KiB
sectors one call per sector, and for 128 KiB requests of 4 KiB sectors;
encryption and decryption, each for about --seconds. The implementation vaults
are opened with is marked selected. Then compare the sector ciphers of LUKS and
VeraCrypt volumes: AES, Serpent, Twofish, Camellia and Kuznyechik in XTS with
256-bit keys, 128 KiB requests of 512-byte units, on one core (a cascade costs
about the sum of its ciphers). Then time Argon2id: one derivation with
create's default memory (1 GiB, at most half the physical memory) and threads
(min(4, CPUs)) at one iteration, the figure create's --kdf-time divides its
target by to choose the iterations; and one with the parameters given with
--kdf-memory, --kdf-iterations and --kdf-threads, if any.

The figures depend on what else the machine does; compare figures from one run.

With --json the result is a list of objects, one per measurement. Cipher
results:
  {"impl": "vaes-avx2", "op": "encrypt", "sector_size": 4096,
   "request_size": 4096, "mib_per_s": 11732.5, "selected": true}
impl is an implementation name or "golang.org/x/crypto/xts"; op is "encrypt"
or "decrypt"; request_size is the bytes per call; selected is true for
exactly one result per op, sector_size and request_size. Sector cipher
results add the cipher:
  {"impl": "xts(serpent)", "op": "encrypt", "cipher": "serpent-xts-plain64",
   "sector_size": 512, "request_size": 131072, "mib_per_s": 310.2,
   "selected": true}
one per cipher and op; selected is true (the one implementation of it that
volumes are opened with). Argon2id results:
  {"impl": "argon2id", "op": "derive", "seconds": 1.32, "memory_kib": 1048576,
   "iterations": 1, "threads": 2, "selected": false, "default": true}
seconds is the time of one derivation with those parameters; default is true
for the default parameters, absent for the given ones.`,
		Example: `  cryptvol benchmark
  cryptvol benchmark --json --seconds 0.2
  cryptvol benchmark --kdf-memory 256M --kdf-iterations 4`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if !(seconds > 0 && seconds <= 60) { // also refuses NaN
				return &usageError{fmt.Sprintf("--seconds %v: must be more than 0 and at most 60", seconds)}
			}
			var given *kdf.Params
			if c.Flags().Changed("kdf-memory") || c.Flags().Changed("kdf-iterations") || c.Flags().Changed("kdf-threads") {
				p, err := benchKDFParams(memory, iters, threads)
				if err != nil {
					return err
				}
				given = &p
			}
			ctx := c.Context()
			d := time.Duration(seconds * float64(time.Second))
			results, err := benchCipher(ctx, d)
			if err != nil {
				return err
			}
			specs, err := benchSpecs(ctx, d)
			if err != nil {
				return err
			}
			results = append(results, specs...)
			kdfRuns := []kdf.Params{benchDefaultKDF()}
			if given != nil {
				kdfRuns = append(kdfRuns, *given)
			}
			for i, p := range kdfRuns {
				if err := ctx.Err(); err != nil {
					return err
				}
				t, err := kdf.Measure(p)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				results = append(results, benchJSON{Impl: "argon2id", Op: "derive", Seconds: math.Round(t.Seconds()*1000) / 1000,
					MemoryKiB: p.Memory, Iterations: p.Iterations, Threads: p.Threads, Default: i == 0})
			}
			if asJSON {
				b, _ := json.MarshalIndent(results, "", "  ")
				u.printf("%s\n", b)
				return nil
			}
			return printBenchmark(u, results, seconds)
		},
	}
	f := c.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON (the schema is above)")
	f.Float64Var(&seconds, "seconds", 0.4, "time each cipher case for about this many seconds")
	f.StringVar(&memory, "kdf-memory", "", "also time Argon2id with this memory, e.g. 256M (default 1G, at most half the physical memory)")
	f.Uint32Var(&iters, "kdf-iterations", 1, "iterations for the given Argon2id parameters")
	f.Uint32Var(&threads, "kdf-threads", 0, "threads for the given Argon2id parameters (default min(4, CPUs))")
	return c
}

// benchDefaultKDF returns the Argon2id parameters timed as the default: those
// of create without --kdf-* flags, at one iteration. The CLI tests make it
// cheap (main_test.go), as a 1 GiB derivation takes seconds under the race
// detector.
var benchDefaultKDF = func() kdf.Params {
	return kdf.Params{Memory: kdf.DefaultMemory(), Iterations: 1, Threads: kdf.DefaultThreads()}
}

// benchKDFParams resolves the --kdf-* flags, the ones not given taking
// their defaults.
func benchKDFParams(memory string, iters, threads uint32) (kdf.Params, error) {
	p := kdf.Params{Memory: kdf.DefaultMemory(), Iterations: iters, Threads: kdf.DefaultThreads()}
	if memory != "" {
		b, err := parseSize(memory)
		if err != nil {
			return p, &usageError{"--kdf-memory: " + err.Error()}
		}
		if b%1024 != 0 || b/1024 > math.MaxUint32 {
			return p, &usageError{fmt.Sprintf("--kdf-memory %s: must be a whole number of KiB", memory)}
		}
		p.Memory = uint32(b / 1024)
	}
	if threads != 0 {
		p.Threads = threads
	}
	if err := p.Validate(); err != nil {
		return p, &usageError{"key derivation parameters: " + err.Error()}
	}
	return p, nil
}

// benchCipher measures every implementation, then the reference, for each
// shape and operation, each for about d.
func benchCipher(ctx context.Context, d time.Duration) ([]benchJSON, error) {
	key := make([]byte, cipher.KeySize)
	rand.Read(key) // a throwaway key: nothing is encrypted for keeps
	impls := cipher.Implementations()
	// The first case would otherwise also pay for paging in and for the
	// core leaving its idle clock.
	if enc, _, err := benchFuncs(impls[0], key, 4096); err == nil {
		measure(enc, 4096, 4096, min(d/4, 100*time.Millisecond))
	}
	var out []benchJSON
	for _, name := range append(impls, xtsReference) {
		for _, sh := range benchShapes {
			enc, dec, err := benchFuncs(name, key, sh.sector)
			if err != nil {
				return nil, err
			}
			for _, op := range []struct {
				name string
				f    func(buf []byte, sector uint64)
			}{{"encrypt", enc}, {"decrypt", dec}} {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				out = append(out, benchJSON{Impl: name, Op: op.name, SectorSize: sh.sector, RequestSize: sh.request,
					MiBPerS: math.Round(measure(op.f, sh.request, sh.sector, d)*10) / 10, Selected: name == impls[0]})
			}
		}
	}
	return out, nil
}

// benchSpecRequest is the request the sector ciphers are compared with:
// 128 KiB of VeraCrypt's 512-byte units.
const benchSpecRequest, benchSpecUnit = 128 << 10, 512

// benchSpecs measures every sector cipher of cipher.BenchmarkSpecs.
func benchSpecs(ctx context.Context, d time.Duration) ([]benchJSON, error) {
	var out []benchJSON
	for _, spec := range cipher.BenchmarkSpecs() {
		key := make([]byte, spec.KeySize)
		rand.Read(key)
		s, err := cipher.NewSector(spec, key, make([]byte, spec.StateSize()), benchSpecUnit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec, err)
		}
		for _, op := range []struct {
			name string
			f    func(buf []byte, sector uint64)
		}{{"encrypt", func(b []byte, n uint64) { s.Encrypt(b, b, n) }}, {"decrypt", func(b []byte, n uint64) { s.Decrypt(b, b, n) }}} {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			out = append(out, benchJSON{Impl: s.Implementation(), Op: op.name, Cipher: spec.String(), SectorSize: benchSpecUnit,
				RequestSize: benchSpecRequest, MiBPerS: math.Round(measure(op.f, benchSpecRequest, benchSpecUnit, d)*10) / 10, Selected: true})
		}
	}
	return out, nil
}

// benchFuncs returns in-place encryption and decryption of whole requests of
// sectorSize sectors with the named implementation.
func benchFuncs(name string, key []byte, sectorSize int) (enc, dec func(buf []byte, sector uint64), err error) {
	if name == xtsReference {
		// x/crypto/xts takes one sector per call.
		c, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			return nil, nil, err
		}
		each := func(f func(dst, src []byte, sector uint64)) func([]byte, uint64) {
			return func(buf []byte, sector uint64) {
				for i := 0; i < len(buf); i += sectorSize {
					f(buf[i:i+sectorSize], buf[i:i+sectorSize], sector)
					sector++
				}
			}
		}
		return each(c.Encrypt), each(c.Decrypt), nil
	}
	x, err := cipher.NewWith(name, key, make([]byte, cipher.StateSize), sectorSize)
	if err != nil {
		return nil, nil, err
	}
	return func(buf []byte, s uint64) { x.Encrypt(buf, buf, s) }, func(buf []byte, s uint64) { x.Decrypt(buf, buf, s) }, nil
}

// measure calls f on a request-sized buffer for about d and returns MiB/s.
// The clock is read once per batch, and batches grow until one takes about a
// hundredth of d, so reading it costs nothing measurable.
func measure(f func([]byte, uint64), request, sectorSize int, d time.Duration) float64 {
	buf := make([]byte, request)
	perCall := uint64(request / sectorSize)
	var sector uint64
	f(buf, sector) // warm up: page in the buffer, load the code
	batch, calls := 1, 0
	start := time.Now()
	var elapsed time.Duration
	for elapsed < d {
		t := time.Now()
		for range batch {
			f(buf, sector)
			sector += perCall
		}
		calls += batch
		if time.Since(t) < d/100 {
			batch *= 2
		}
		elapsed = time.Since(start)
	}
	return float64(calls) * float64(request) / elapsed.Seconds() / (1 << 20)
}

// printBenchmark prints the results as a table of MiB/s, one row per
// implementation in the order measured, then the Argon2id timings.
func printBenchmark(u *ui, results []benchJSON, seconds float64) error {
	u.printf("XTS-AES-256 on one core, MiB/s, about %gs per case; 128 KiB: requests of 4 KiB sectors\n", seconds)
	var labels []string
	row := map[string][]string{}
	for _, r := range results {
		if r.Impl == "argon2id" || r.Cipher != "" {
			continue
		}
		label := r.Impl
		if r.Selected {
			label += " (selected)"
		} else if r.Impl == xtsReference {
			label += " (reference)"
		}
		if _, ok := row[label]; !ok {
			labels = append(labels, label)
		}
		row[label] = append(row[label], fmt.Sprintf("%.0f", r.MiBPerS))
	}
	var header []string
	for _, sh := range benchShapes {
		for _, op := range []string{"enc", "dec"} {
			header = append(header, humanBytes(int64(sh.request))+" "+op)
		}
	}
	width := len("implementation")
	for _, l := range labels {
		width = max(width, len(l))
	}
	line := func(label string, cells []string) {
		u.printf("%-*s", width, label)
		for i, c := range cells {
			u.printf("  %*s", len(header[i]), c)
		}
		u.printf("\n")
	}
	line("implementation", header)
	for _, l := range labels {
		line(l, row[l])
	}
	u.printf("\nSector ciphers (XTS, 256-bit keys) on one core, MiB/s: 128 KiB requests of 512-byte units\n")
	cw, iw := len("cipher"), len("implementation")
	for _, r := range results {
		if r.Cipher != "" {
			cw, iw = max(cw, len(r.Cipher)), max(iw, len(r.Impl))
		}
	}
	u.printf("%-*s  %-*s  %9s  %9s\n", cw, "cipher", iw, "implementation", "encrypt", "decrypt")
	for i := 0; i < len(results); i++ {
		r := results[i]
		if r.Cipher == "" || r.Op != "encrypt" || i+1 == len(results) {
			continue
		}
		u.printf("%-*s  %-*s  %9.0f  %9.0f\n", cw, r.Cipher, iw, r.Impl, r.MiBPerS, results[i+1].MiBPerS)
	}
	u.printf("\nArgon2id, one derivation\n")
	for _, r := range results {
		if r.Impl != "argon2id" {
			continue
		}
		p := kdf.Params{Memory: r.MemoryKiB, Iterations: r.Iterations, Threads: r.Threads}
		if r.Default {
			u.printf("  %s: %.3f s (create's default memory and threads; --kdf-time divides by this)\n", p, r.Seconds)
		} else {
			u.printf("  %s: %.3f s\n", p, r.Seconds)
		}
	}
	return nil
}
