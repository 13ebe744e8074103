package tcrypt

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// headerVector is one entry of testvectors/tcrypt/headers.json.
type headerVector struct {
	Name     string    `json:"name"`
	Plain    string    `json:"plaintext"`
	Kind     string    `json:"kind"`
	Legacy   bool      `json:"legacy"`
	FileSize int64     `json:"file_size"`
	Want     *[3]int64 `json:"want"`
	Field    string    `json:"field"`
}

func (v headerVector) location() Location {
	l := Location{Kind: Normal, Legacy: v.Legacy}
	switch v.Kind {
	case "hidden":
		l.Kind, l.Offset = Hidden, HeaderAreaSize
		if v.Legacy {
			l.Offset = v.FileSize - hiddenOffsetV3
		}
	case "system":
		l.Kind, l.Offset = System, SystemHeaderOffset
	}
	return l
}

func headerVectors(t testing.TB) []headerVector {
	b, err := os.ReadFile("../testvectors/tcrypt/headers.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []headerVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestHeaderVectors checks Parse and Area against the headers of the
// VeraCrypt and TrueCrypt images, and the variants that must be refused.
func TestHeaderVectors(t *testing.T) {
	vs := headerVectors(t)
	if len(vs) == 0 {
		t.Fatal("no header vectors to seed the fuzzer with")
	}
	for _, v := range vs {
		plain, err := hex.DecodeString(v.Plain)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Parse(plain, nil)
		var a Area
		if err == nil {
			a, err = h.Area(v.location(), v.FileSize)
		}
		if v.Want != nil {
			if err != nil {
				t.Errorf("%s: %v", v.Name, err)
			} else if got := [3]int64{a.Offset, a.Size, int64(a.IVOffset)}; got != *v.Want {
				t.Errorf("%s: area %v, want %v", v.Name, got, *v.Want)
			}
			continue
		}
		var he *HeaderError
		if !errors.As(err, &he) || he.Field != v.Field {
			t.Errorf("%s: got %v, want a %s error", v.Name, err, v.Field)
		}
	}
}

// FuzzParseArea runs the decoding of a decrypted header — Parse, then Area
// for a file size and a header place — on hostile plaintexts (every field,
// sizes, offsets, hidden-volume bounds): never a panic, and whatever is
// accepted describes whole 512-byte units inside the file, clear of the
// header it came from, and re-encodes to the same fields.
func FuzzParseArea(f *testing.F) {
	for _, v := range headerVectors(f) {
		plain, _ := hex.DecodeString(v.Plain)
		l := v.location()
		f.Add(plain, v.FileSize, uint8(l.Kind), l.Legacy, false)
	}
	f.Fuzz(func(t *testing.T, plain []byte, fileSize int64, kind uint8, legacy, fix bool) {
		if len(plain) == EncryptedSize && fix {
			// Let mutations reach the field checks: fix the checksums.
			resealed := append([]byte(nil), plain...)
			reseal(resealed)
			plain = resealed
		}
		h, err := Parse(plain, nil)
		if err != nil {
			return
		}
		keys := make([]byte, KeyAreaSize)
		if len(plain) == EncryptedSize {
			copy(keys, plain[offKeys:])
		}
		again, err := Parse(h.Encode(keys), nil)
		if err != nil || *again != *h {
			t.Fatalf("re-encoding changed the header: %+v, %+v, %v", h, again, err)
		}
		l := Location{Kind: Kind(kind % 3), Legacy: legacy}
		switch l.Kind {
		case Hidden:
			l.Offset = HeaderAreaSize
			if legacy {
				l.Offset = fileSize - hiddenOffsetV3
			}
		case System:
			l.Offset = SystemHeaderOffset
		}
		a, err := h.Area(l, fileSize)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("Area failed without a HeaderError: %v", err)
			}
			return
		}
		switch {
		case a.Size <= 0 || a.Offset < 0 || a.End() > fileSize || a.End() < a.Offset:
			t.Fatalf("area %+v outside a %d-byte file", a, fileSize)
		case a.Offset%UnitSize != 0 || a.Size%UnitSize != 0 || a.IVOffset != uint64(a.Offset)/UnitSize:
			t.Fatalf("area %+v not in whole units", a)
		case a.Offset < l.Offset+HeaderSize && a.End() > l.Offset:
			t.Fatalf("area %+v overlaps its header at %d", a, l.Offset)
		case l.Kind != System && !l.Legacy && h.Version >= 4 && (a.Offset < DataOffset || a.End() > fileSize-BackupAreaSize):
			t.Fatalf("area %+v overlaps the header areas of a %d-byte file", a, fileSize)
		}
	})
}
