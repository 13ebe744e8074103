package kdf

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// TestArgon2RFC9106 checks the RFC's own Argon2id vector, which uses the
// secret key and associated data inputs x/crypto cannot take.
func TestArgon2RFC9106(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testvectors", "argon2", "rfc9106-argon2id.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		Name      string `json:"name"`
		Password  string `json:"password"`
		Salt      string `json:"salt"`
		Secret    string `json:"secret"`
		AD        string `json:"associated_data"`
		Time      uint32 `json:"time"`
		MemoryKiB uint32 `json:"memory_kib"`
		Threads   uint32 `json:"threads"`
		Tag       string `json:"tag"`
	}
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	dec := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	for _, v := range vs {
		want := dec(v.Tag)
		k, err := argon2Key(context.Background(), modeArgon2id, dec(v.Password), dec(v.Salt), dec(v.Secret), dec(v.AD), v.Time, v.MemoryKiB, v.Threads, len(want))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.Bytes(), want) {
			t.Errorf("%s: got %x, want %x", v.Name, k.Bytes(), want)
		}
		k.Destroy()
	}
}

// TestArgon2AgainstXCrypto compares Argon2id and Argon2i with
// golang.org/x/crypto/argon2 over random parameters: memory not a multiple of
// 4·lanes, several lanes and passes, outputs shorter and longer than 64 bytes
// (H' with one and with many BLAKE2b calls).
func TestArgon2AgainstXCrypto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60; i++ {
		threads := uint32(1 + r.IntN(5))
		memory := 8*threads + uint32(r.IntN(600))
		passes := uint32(1 + r.IntN(4))
		n := []int{4, 16, 32, 64, 65, 100, 128, 300}[r.IntN(8)]
		pw := make([]byte, r.IntN(40))
		salt := make([]byte, 8+r.IntN(24))
		for _, b := range [][]byte{pw, salt} {
			for j := range b {
				b[j] = byte(r.Uint32())
			}
		}
		for _, mode := range []uint32{modeArgon2i, modeArgon2id} {
			want := argon2.IDKey(pw, salt, passes, memory, uint8(threads), uint32(n))
			if mode == modeArgon2i {
				want = argon2.Key(pw, salt, passes, memory, uint8(threads), uint32(n))
			}
			got, err := argon2Key(context.Background(), mode, pw, salt, nil, nil, passes, memory, threads, n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("mode %d t=%d m=%d p=%d n=%d: got %x, want %x", mode, passes, memory, threads, n, got.Bytes(), want)
			}
			got.Destroy()
		}
	}
}

// TestArgon2Cancel: a derivation of a minute or more stops soon after its
// context is cancelled, and its working memory is given back. The latency is
// logged (it is the figure of "Ctrl-C stops an unlock"); the test asserts
// only that it is a small part of the whole derivation, measured side by side.
func TestArgon2Cancel(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a derivation of several seconds")
	}
	p := Params{Memory: 64 << 10, Iterations: 1, Threads: 1}
	pass, err := Measure(p) // one pass over 64 MiB
	if err != nil {
		t.Fatal(err)
	}
	// 256 MiB × 64 passes: 256 times the pass just measured.
	big := Params{Memory: 256 << 10, Iterations: 64, Threads: DefaultThreads()}
	if err := checkParams(big); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stopped time.Time
	go func() {
		k, err := Derive(ctx, []byte("x"), make([]byte, 32), big)
		stopped = time.Now()
		if k != nil {
			k.Destroy()
		}
		done <- err
	}()
	time.Sleep(time.Second)
	start := time.Now()
	cancel()
	err = <-done
	latency := stopped.Sub(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Derive after cancel: %v", err)
	}
	whole := 256 * pass
	t.Logf("cancelled after %v: stopped in %v (the whole derivation: about %v)", time.Second, latency, whole)
	if latency > whole/20 {
		t.Fatalf("stopping took %v, more than a twentieth of the whole derivation (%v)", latency, whole)
	}
}

// BenchmarkArgon2 compares this package's Argon2id with golang.org/x/crypto's
// (its SSE4.1 assembly on amd64) as kdf.Derive used it before — the memory
// handed back to the system after each derivation, so each one faults its
// memory in anew, as this package's does — on the same parameters, side by
// side. It reports the CPU time of each, user (user-ns/op) and system
// (sys-ns/op: page faults, mapping, wiping): on a machine shared with other
// work the wall time says little.
func BenchmarkArgon2(b *testing.B) {
	salt := make([]byte, 32)
	for _, threads := range []uint32{1, 2} {
		p := Params{Memory: 64 << 10, Iterations: 2, Threads: threads}
		for _, impl := range []struct {
			name   string
			derive func()
		}{
			{"cryptvol", func() {
				k, _ := argon2id([]byte("pw"), salt, p, 32)
				k.Destroy()
			}},
			{"xcrypto", func() {
				argon2.IDKey([]byte("pw"), salt, p.Iterations, p.Memory, uint8(p.Threads), 32)
				runtime.GC()
				debug.FreeOSMemory()
			}},
		} {
			b.Run(fmt.Sprintf("%s/p=%d", impl.name, threads), func(b *testing.B) {
				b.SetBytes(int64(p.Memory) << 10 * int64(p.Iterations))
				user, sys := cpuTime()
				for b.Loop() {
					impl.derive()
				}
				user2, sys2 := cpuTime()
				b.ReportMetric(float64(user2-user)/float64(b.N), "user-ns/op")
				b.ReportMetric(float64(sys2-sys)/float64(b.N), "sys-ns/op")
			})
		}
	}
}

// TestCompressImplementations: compress (assembly where there is some) and
// compressGeneric agree on random blocks, with and without xor, and with out
// the same block as x or y.
func TestCompressImplementations(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fill := func(b *argonBlock) {
		for i := range b {
			b[i] = r.Uint64()
		}
	}
	for i := 0; i < 200; i++ {
		var x, y, out argonBlock
		fill(&x)
		fill(&y)
		fill(&out)
		for _, xor := range []bool{false, true} {
			for _, alias := range []string{"", "x", "y"} {
				a, b := out, out
				ax, ay := x, y
				pa, pb := &a, &b
				if alias == "x" {
					a, b = x, x
					compress(pa, pa, &y, xor)
					compressGeneric(pb, pb, &y, xor)
				} else if alias == "y" {
					a, b = y, y
					compress(pa, &x, pa, xor)
					compressGeneric(pb, &x, pb, xor)
				} else {
					compress(pa, &ax, &ay, xor)
					compressGeneric(pb, &ax, &ay, xor)
				}
				if a != b {
					t.Fatalf("block %d xor=%v out=%q: the implementations differ", i, xor, alias)
				}
			}
		}
	}
}
