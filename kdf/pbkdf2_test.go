package kdf

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type pbkdf2Vector struct {
	Name       string `json:"name"`
	Hash       string `json:"hash"`
	Password   string `json:"password"`
	Salt       string `json:"salt"`
	Iterations uint32 `json:"iterations"`
	Key        string `json:"key"`
}

// TestPBKDF2Vectors checks the RFC 6070 (HMAC-SHA1) and RFC 7914 §11
// (HMAC-SHA256) vectors.
func TestPBKDF2Vectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testvectors", "pbkdf2", "pbkdf2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []pbkdf2Vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 7 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		pw, _ := hex.DecodeString(v.Password)
		salt, _ := hex.DecodeString(v.Salt)
		want, _ := hex.DecodeString(v.Key)
		k, err := PBKDF2{Hash: v.Hash, Iterations: v.Iterations}.Derive(context.Background(), pw, salt, len(want))
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if !bytes.Equal(k.Bytes(), want) {
			t.Errorf("%s: got %x, want %x", v.Name, k.Bytes(), want)
		}
		k.Destroy()
	}
}

// TestPBKDF2MatchesStdlib compares every named hash with crypto/pbkdf2 on
// random inputs, including secrets longer than the HMAC block and outputs of
// several blocks.
func TestPBKDF2MatchesStdlib(t *testing.T) {
	for _, hh := range hashes {
		name, h := hh.names[0], hh.new
		for _, c := range []struct{ secret, n int }{{0, 20}, {5, 64}, {200, 100}, {1000, 7}} {
			secret := make([]byte, c.secret)
			salt := make([]byte, 32)
			rand.Read(secret)
			rand.Read(salt)
			want, err := pbkdf2.Key(h, string(secret), salt, 37, c.n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := PBKDF2{Hash: name, Iterations: 37}.Derive(context.Background(), secret, salt, c.n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s secret %d bytes, %d out: differs from crypto/pbkdf2", name, c.secret, c.n)
			}
			got.Destroy()
		}
	}
}

func TestPBKDF2Bounds(t *testing.T) {
	ctx := context.Background()
	var ce *CostError
	for _, p := range []PBKDF2{{"sha256", 0}, {"sha256", MaxPBKDF2Iterations + 1}, {"sha256", 1<<32 - 1}} {
		start := time.Now()
		if _, err := p.Derive(ctx, []byte("x"), []byte("salt"), 32); !errors.As(err, &ce) || ce.Field != "iterations" {
			t.Errorf("%v: %v, want an iterations CostError", p, err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%v: refusing took work", p)
		}
	}
	if _, err := (PBKDF2{"md5", 1000}).Derive(ctx, nil, nil, 16); !errors.Is(err, ErrUnknownHash) {
		t.Errorf("md5: %v, want ErrUnknownHash", err)
	}
	for _, n := range []int{0, -1, MaxPBKDF2KeySize + 1} {
		if _, err := (PBKDF2{"sha1", 1}).Derive(ctx, nil, nil, n); !errors.As(err, &ce) || ce.Field != "key size" {
			t.Errorf("key size %d: %v", n, err)
		}
	}
}

func TestPBKDF2Cancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := PBKDF2{"sha512", MaxPBKDF2Iterations}.Derive(ctx, []byte("x"), []byte("salt"), 64)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}

func TestCalibratePBKDF2(t *testing.T) {
	p, err := CalibratePBKDF2("sha256", 20*time.Millisecond, 64)
	if err != nil || p.Hash != "sha256" || p.Iterations < 1000 || p.Validate() != nil {
		t.Fatalf("calibrated %+v, %v", p, err)
	}
	if _, err := CalibratePBKDF2("nope", time.Second, 32); !errors.Is(err, ErrUnknownHash) {
		t.Fatalf("unknown hash: %v", err)
	}
	if _, err := CalibratePBKDF2("sha1", 0, 32); err == nil {
		t.Fatal("zero target accepted")
	}
}
