package header

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// seedHeaders returns the header blocks of the golden vaults in testvectors/.
func seedHeaders(t testing.TB) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("..", "testvectors", "vaults", "*.cv.gz"))
	var seeds [][]byte
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, Size)
		if _, err := io.ReadFull(zr, b); err != nil {
			t.Fatal(err)
		}
		f.Close()
		seeds = append(seeds, b)
	}
	return seeds
}

func TestSeedsNotEmpty(t *testing.T) {
	seeds := seedHeaders(t)
	if len(seeds) == 0 {
		t.Fatal("no golden vault headers to seed the fuzzer with")
	}
	for _, s := range seeds {
		if _, err := Decode(s); err != nil {
			t.Fatalf("a golden header does not decode: %v", err)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes to exactly the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	for _, s := range seedHeaders(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= Size && b[len(b)-1]&1 == 0 {
			// Let mutations reach field validation: fix the checksum half the
			// time (on a copy: the fuzzer's input must not be modified).
			b = bytes.Clone(b)
			fixChecksum(b)
		}
		h, err := Decode(b)
		if err != nil {
			if h != nil {
				t.Fatal("header returned with an error")
			}
			return
		}
		if !bytes.Equal(h.Encode(), b[:Size]) {
			t.Fatal("decoded header does not re-encode to the same bytes")
		}
		for _, i := range h.ActiveSlots() {
			dst := make([]byte, MasterKeySize)
			if err := h.Slots[i].Unwrap(dst, make([]byte, 32), h.UUID); err == nil {
				t.Fatal("a fuzzed slot unwrapped with a zero key")
			}
		}
	})
}
