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

// TestArgon2Vectors checks the Argon2i vectors (testvectors/argon2/argon2i.json)
// and the Argon2id ones through Argon2.Derive.
func TestArgon2Vectors(t *testing.T) {
	for file, variant := range map[string]string{"argon2i.json": Argon2i, "argon2id.json": Argon2id} {
		data, err := os.ReadFile(filepath.Join("..", "testvectors", "argon2", file))
		if err != nil {
			t.Fatal(err)
		}
		var vs []argonVector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		if len(vs) < 5 {
			t.Fatalf("%s: only %d vectors", file, len(vs))
		}
		for _, v := range vs {
			pw, _ := hex.DecodeString(v.Password)
			salt, _ := hex.DecodeString(v.Salt)
			want, _ := hex.DecodeString(v.Tag)
			a := Argon2{Variant: variant, Memory: v.MemoryKiB, Iterations: v.Time, Threads: v.Threads}
			k, err := a.Derive(context.Background(), pw, salt, len(want))
			if err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			if !bytes.Equal(k.Bytes(), want) {
				t.Errorf("%s: got %x, want %x", v.Name, k.Bytes(), want)
			}
			k.Destroy()
		}
	}
}

func TestArgon2Bounds(t *testing.T) {
	ctx := context.Background()
	salt := make([]byte, 32)
	for _, tc := range []struct {
		a     Argon2
		field string
	}{
		{Argon2{Argon2i, 1024, 1, 0}, "threads"},
		{Argon2{Argon2i, 1024, 1, 65}, "threads"},
		{Argon2{Argon2i, 1024, 1, 256}, "threads"}, // would wrap to 0 as a uint8
		{Argon2{Argon2id, 15, 1, 2}, "memory"},     // below 8 KiB per lane
		{Argon2{Argon2id, MaxArgon2Memory + 1, 1, 1}, "memory"},
		{Argon2{Argon2id, 1 << 30, 1, 1}, "memory"},
		{Argon2{Argon2id, 64, 0, 1}, "iterations"},
		{Argon2{Argon2id, 64, 1<<32 - 1, 1}, "iterations"},
		{Argon2{Argon2id, MaxArgon2Memory, 17, 4}, "work"},
	} {
		start := time.Now()
		var ce *CostError
		if _, err := tc.a.Derive(ctx, []byte("x"), salt, 32); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%v: %v, want a %s CostError", tc.a, err, tc.field)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%v: refusing took work", tc.a)
		}
	}
	ok := Argon2{Argon2i, 32, 1, 1}
	if _, err := ok.Derive(ctx, nil, salt[:7], 32); err == nil {
		t.Error("7-byte salt accepted")
	}
	if _, err := ok.Derive(ctx, nil, salt, 3); err == nil {
		t.Error("3-byte key accepted")
	}
	if _, err := (Argon2{"argon2d", 32, 1, 1}).Derive(ctx, nil, salt, 32); err == nil {
		t.Error("argon2d accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ok.Derive(cancelled, nil, salt, 32); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if got := (Params{Memory: 8192, Iterations: 3, Threads: 2}).Argon2id(); got != (Argon2{Argon2id, 8192, 3, 2}) {
		t.Errorf("Params.Argon2id = %+v", got)
	}
}
