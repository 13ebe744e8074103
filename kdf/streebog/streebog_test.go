package streebog

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"hash"
	"math/rand/v2"
	"os"
	"testing"
)

type vectors struct {
	Hash []struct {
		Name       string `json:"name"`
		MessageHex string `json:"message_hex"`
		Digest512  string `json:"digest512"`
		Digest256  string `json:"digest256"`
	} `json:"hash"`
	HMAC512 []struct {
		Name       string `json:"name"`
		Key        string `json:"key"`
		MessageHex string `json:"message_hex"`
		MAC        string `json:"mac"`
	} `json:"hmac512"`
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../testvectors/hash/streebog.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs.Hash) < 4 || len(vs.HMAC512) < 1 {
		t.Fatalf("%d hash and %d HMAC vectors", len(vs.Hash), len(vs.HMAC512))
	}
	for _, v := range vs.Hash {
		msg, _ := hex.DecodeString(v.MessageHex)
		for _, c := range []struct {
			h    hash.Hash
			want string
		}{{New(), v.Digest512}, {New256(), v.Digest256}} {
			c.h.Write(msg)
			if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
				t.Errorf("%s (%d bytes): %s, want %s", v.Name, c.h.Size(), got, c.want)
			}
		}
	}
	for _, v := range vs.HMAC512 {
		key, _ := hex.DecodeString(v.Key)
		msg, _ := hex.DecodeString(v.MessageHex)
		m := hmac.New(New, key)
		m.Write(msg)
		if got := hex.EncodeToString(m.Sum(nil)); got != v.MAC {
			t.Errorf("%s: %s, want %s", v.Name, got, v.MAC)
		}
	}
}

// TestStreaming checks that any split of the input into writes gives the
// one-write digest, and that Sum and Reset behave, for both sizes.
func TestStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, newHash := range []func() hash.Hash{New, New256} {
		for n := range 300 {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(rng.Uint32())
			}
			h := newHash()
			h.Write(msg)
			want := h.Sum(nil)
			if again := h.Sum(nil); !bytes.Equal(again, want) {
				t.Fatal("Sum changed the state")
			}
			s := newHash()
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
}

// TestCarry checks the 512-bit addition's carry across all words.
func TestCarry(t *testing.T) {
	x := [8]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), 5}
	one := [8]uint64{1}
	add512(&x, &one)
	if x != [8]uint64{0, 0, 0, 0, 0, 0, 0, 6} {
		t.Fatalf("carry: %x", x)
	}
	all := [8]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
	add512(&all, &one)
	if all != [8]uint64{} {
		t.Fatalf("wrap: %x", all)
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
