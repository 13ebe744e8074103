package whirlpool

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

type vectors struct {
	Hash []struct {
		Name    string `json:"name"`
		Message string `json:"message"`
		Repeat  int    `json:"repeat"`
		Digest  string `json:"digest"`
	} `json:"hash"`
	HMAC []struct {
		Name    string `json:"name"`
		Key     string `json:"key"`
		Message string `json:"message"`
		MAC     string `json:"mac"`
	} `json:"hmac"`
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../testvectors/hash/whirlpool.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs.Hash) < 9 || len(vs.HMAC) < 1 {
		t.Fatalf("%d hash and %d HMAC vectors", len(vs.Hash), len(vs.HMAC))
	}
	for _, v := range vs.Hash {
		msg := strings.Repeat(v.Message, max(1, v.Repeat))
		h := New()
		h.Write([]byte(msg))
		if got := hex.EncodeToString(h.Sum(nil)); got != v.Digest {
			t.Errorf("%s: %s, want %s", v.Name, got, v.Digest)
		}
	}
	for _, v := range vs.HMAC {
		key, _ := hex.DecodeString(v.Key)
		m := hmac.New(New, key)
		m.Write([]byte(v.Message))
		if got := hex.EncodeToString(m.Sum(nil)); got != v.MAC {
			t.Errorf("%s: %s, want %s", v.Name, got, v.MAC)
		}
	}
}

// TestStreaming checks that any split of the input into writes gives the
// one-write digest, and that Sum leaves the state alone.
func TestStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		h := New()
		h.Write(msg)
		want := h.Sum(nil)
		if again := h.Sum(nil); !bytes.Equal(again, want) {
			t.Fatal("Sum changed the state")
		}
		s := New()
		for rest := msg; len(rest) > 0; {
			k := min(len(rest), rng.IntN(80)+1)
			s.Write(rest[:k])
			rest = rest[k:]
		}
		if got := s.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("length %d: split writes give %x, want %x", n, got, want)
		}
		s.Reset()
		s.Write(msg)
		if got := s.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("length %d: after Reset %x", n, got)
		}
	}
}

func BenchmarkHash1K(b *testing.B) {
	buf := make([]byte, 1024)
	h := New()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		h.Reset()
		h.Write(buf)
		h.Sum(nil)
	}
}

// TestMarshal checks that a state saved mid-message and restored into a fresh
// hash finishes with the same digest, and that junk is refused.
func TestMarshal(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789abcdef"), 20)
	for _, cut := range []int{0, 1, 63, 64, 65, 200, len(msg)} {
		h := New()
		h.Write(msg[:cut])
		state, err := h.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		h.Write(msg[cut:])
		want := h.Sum(nil)
		r := New()
		if err := r.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(state); err != nil {
			t.Fatal(err)
		}
		r.Write(msg[cut:])
		if got := r.Sum(nil); !bytes.Equal(got, want) {
			t.Fatalf("cut %d: restored state gives %x", cut, got)
		}
		state[len(state)-1] ^= 0xff
		bad := New().(interface{ UnmarshalBinary([]byte) error })
		if bad.UnmarshalBinary(state[:len(state)-1]) == nil {
			t.Fatal("a truncated state was accepted")
		}
	}
}
