package kdf

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type argonVector struct {
	Name      string `json:"name"`
	Password  string `json:"password"`
	Salt      string `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint32 `json:"threads"`
	Tag       string `json:"tag"`
}

// TestArgon2idVectors checks the reference implementation's vectors through
// this package's Argon2 (Derive itself also bounds the memory, and most vectors
// use less than our 8 MiB floor, so they go through argon2id below).
func TestArgon2idVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testvectors", "argon2", "argon2id.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []argonVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		pw, _ := hex.DecodeString(v.Password)
		salt, _ := hex.DecodeString(v.Salt)
		want, _ := hex.DecodeString(v.Tag)
		got, err := argon2id(pw, salt, Params{Memory: v.MemoryKiB, Iterations: v.Time, Threads: v.Threads}, len(want))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: got %x, want %x", v.Name, got.Bytes(), want)
		}
		got.Destroy()
		// Where the vector is within our bounds, Derive must agree too.
		p := Params{Memory: v.MemoryKiB, Iterations: v.Time, Threads: v.Threads}
		if p.Validate() == nil && len(salt) >= MinSalt && len(salt) <= MaxSalt && len(want) == KeySize {
			k, err := Derive(context.Background(), pw, salt, p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.Bytes(), want) {
				t.Errorf("%s: Derive differs", v.Name)
			}
			k.Destroy()
		}
	}
}

func TestValidateBounds(t *testing.T) {
	ok := Params{Memory: MinMemory, Iterations: 1, Threads: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p     Params
		field string
	}{
		{Params{0, 1, 1}, "memory"},
		{Params{MinMemory - 1, 1, 1}, "memory"},
		{Params{MaxMemory + 1, 1, 1}, "memory"},
		{Params{1 << 30, 1, 1}, "memory"}, // 1 TiB
		{Params{MinMemory, 0, 1}, "iterations"},
		{Params{MinMemory, MaxIterations + 1, 1}, "iterations"},
		{Params{MinMemory, 1, 0}, "threads"},
		{Params{MinMemory, 1, 1000}, "threads"},
		{Params{MinMemory, 1, 256}, "threads"}, // would wrap to 0 as a uint8
		{Params{MaxMemory, 17, 4}, "work"},
	} {
		var pe *ParamError
		if err := tc.p.Validate(); !errors.As(err, &pe) || pe.Field != tc.field {
			t.Errorf("%+v: got %v, want a %s error", tc.p, err, tc.field)
		}
	}
	if err := (Params{MaxMemory, 16, 4}).Validate(); err != nil {
		t.Errorf("the largest allowed work is refused: %v", err)
	}
}

func TestDeriveRejectsBeforeWork(t *testing.T) {
	salt := make([]byte, 32)
	start := time.Now()
	if _, err := Derive(context.Background(), []byte("x"), salt, Params{Memory: 1 << 30, Iterations: 1, Threads: 1}); err == nil {
		t.Fatal("1 TiB accepted")
	}
	if _, err := Derive(context.Background(), []byte("x"), salt[:MinSalt-1], Params{MinMemory, 1, 1}); err == nil {
		t.Fatal("short salt accepted")
	}
	if time.Since(start) > time.Second {
		t.Fatal("rejection took work")
	}
}

func TestCalibrate(t *testing.T) {
	p, err := Calibrate(200*time.Millisecond, MinMemory, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Memory != MinMemory || p.Threads != 1 || p.Iterations < 1 || p.Validate() != nil {
		t.Fatalf("calibrated %+v", p)
	}
	// A tiny target still gives at least one iteration.
	p, err = Calibrate(time.Nanosecond, MinMemory, 1)
	if err != nil || p.Iterations != 1 {
		t.Fatalf("tiny target: %+v, %v", p, err)
	}
	// A huge target is capped by the work bound, not by overflow.
	p, err = Calibrate(1000*time.Hour, MinMemory, 1)
	if err != nil || p.Iterations != MaxIterations {
		t.Fatalf("huge target: %+v, %v", p, err)
	}
	if _, err := Calibrate(time.Second, 1, 1); err == nil {
		t.Fatal("out-of-bounds memory accepted")
	}
}

func TestMeasure(t *testing.T) {
	d, err := Measure(Params{MinMemory, 1, 1})
	if err != nil || d <= 0 {
		t.Fatalf("Measure = %v, %v", d, err)
	}
	var pe *ParamError
	if _, err := Measure(Params{MinMemory, 0, 1}); !errors.As(err, &pe) || pe.Field != "iterations" {
		t.Fatalf("zero iterations: %v, want an iterations error", err)
	}
}

func TestDefaults(t *testing.T) {
	m := DefaultMemory()
	if m < MinMemory || m > 1<<20 {
		t.Fatalf("default memory %d KiB", m)
	}
	if phys := physicalMemory(); phys != 0 && uint64(m)*1024 > phys/2 && m != MinMemory {
		t.Fatalf("default memory %d KiB is above half of %d bytes", m, phys)
	}
	if th := DefaultThreads(); th < 1 || th > 4 {
		t.Fatalf("default threads %d", th)
	}
}

func TestFormatKiB(t *testing.T) {
	for k, want := range map[uint32]string{1 << 20: "1G", 8192: "8M", 1000: "1000K", 1536: "1536K"} {
		if got := formatKiB(k); got != want {
			t.Errorf("formatKiB(%d) = %q, want %q", k, got, want)
		}
	}
}
