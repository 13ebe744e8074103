package luks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// goldenHeader is one entry of testvectors/luks/luks.json.
type goldenHeader struct {
	File       string `json:"file"`
	DeviceSize int64  `json:"device_size"`
	Stored     int    `json:"stored"`
	Version    int    `json:"version"`
	UUID       string `json:"uuid"`
	Cipher     string `json:"cipher"`
	KeySize    int    `json:"key_size"`
	SectorSize int    `json:"sector_size"`
	DataOffset uint64 `json:"data_offset"`
	Keyslots   []int  `json:"keyslots"`
	Tokens     int    `json:"tokens"`
	data       []byte
}

// goldenHeaders returns the golden headers cryptsetup made (testvectors/luks).
func goldenHeaders(t testing.TB) []goldenHeader {
	dir := filepath.Join("..", "testvectors", "luks")
	b, err := os.ReadFile(filepath.Join(dir, "luks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hs []goldenHeader
	if err := json.Unmarshal(b, &hs); err != nil {
		t.Fatal(err)
	}
	for i := range hs {
		f, err := os.Open(filepath.Join(dir, hs[i].File))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if hs[i].data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return hs
}

// sparseDevice is a device of size bytes that starts with b and holds zeros
// after it.
type sparseDevice struct {
	b    []byte
	size int64
}

func (d sparseDevice) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	clear(p[:n])
	if off < int64(len(d.b)) {
		copy(p[:n], d.b[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestGoldenHeaders reads the headers cryptsetup made and compares what Info
// says with what luksDump said.
func TestGoldenHeaders(t *testing.T) {
	hs := goldenHeaders(t)
	if len(hs) < 6 {
		t.Fatalf("only %d golden headers", len(hs))
	}
	for _, g := range hs {
		h, err := Read(sparseDevice{g.data, g.DeviceSize}, g.DeviceSize)
		if err != nil {
			t.Fatalf("%s: %v", g.File, err)
		}
		info := h.Info()
		var slots []int
		for _, k := range info.Keyslots {
			slots = append(slots, k.Slot)
		}
		if info.Version != g.Version || info.UUID != g.UUID || info.Cipher != g.Cipher || info.KeySize != g.KeySize ||
			info.SectorSize != g.SectorSize || info.DataOffset != g.DataOffset || !slices.Equal(slots, g.Keyslots) ||
			len(info.Tokens) != g.Tokens || info.Unsupported != "" {
			t.Errorf("%s: Info %+v, luksDump said %+v", g.File, info, g)
		}
		for _, c := range info.Copies {
			if c.Problem != "" {
				t.Errorf("%s: %s copy: %s", g.File, c.Name, c.Problem)
			}
		}
	}
}

// fixChecksums recomputes the checksums of the LUKS2 copies in b (at 0, and
// at the primary's hdr_size when that is in range) so mutations reach the
// metadata checks.
func fixChecksums(b []byte) {
	if len(b) < luks2BinSize {
		return
	}
	offs := []uint64{0}
	if n := binary.BigEndian.Uint64(b[8:]); n >= luks2MinHdrSize && n <= luks2MaxHdrSize {
		offs = append(offs, n)
	}
	for _, off := range offs {
		if off+luks2BinSize > uint64(len(b)) {
			continue
		}
		c := b[off:]
		size := binary.BigEndian.Uint64(c[8:])
		if size < luks2MinHdrSize || size > luks2MaxHdrSize || off+size > uint64(len(b)) {
			continue
		}
		var h hash.Hash
		switch cString(c[luks2OffCsumAlg : luks2OffCsumAlg+32]) {
		case "sha1":
			h = sha1.New()
		case "sha512":
			h = sha512.New()
		default:
			h = sha256.New()
		}
		clear(c[luks2OffCsum : luks2OffCsum+luks2CsumSize])
		h.Write(c[:size])
		copy(c[luks2OffCsum:], h.Sum(nil))
	}
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	n := map[int]int{}
	for _, g := range goldenHeaders(t) {
		n[g.Version]++
	}
	if n[1] == 0 || n[2] == 0 {
		t.Fatalf("fuzz seeds: %d LUKS1 and %d LUKS2 golden headers", n[1], n[2])
	}
}

// fuzzRead reads b as the start of a device of at least size bytes and
// checks what a successful read promises.
func fuzzRead(t *testing.T, b []byte, size int64) {
	dev := sparseDevice{b, max(int64(len(b)), size)}
	h, err := Read(dev, dev.size)
	if err != nil {
		if h != nil {
			t.Fatal("a header returned with an error")
		}
		if !errors.Is(err, ErrNotLUKS) && !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Read error of no class: %v", err)
		}
		return
	}
	info := h.Info()
	if h.areasEnd() > uint64(dev.size) {
		t.Fatalf("the header area (%d bytes) is larger than the device (%d)", h.areasEnd(), dev.size)
	}
	for _, detached := range []bool{false, true} {
		if g, err := h.Geometry(dev.size, detached); err == nil {
			if g.Size == 0 || g.Offset+g.Size > uint64(dev.size) || g.Size%uint64(g.SectorSize) != 0 {
				t.Fatalf("Geometry %+v on a %d-byte device", g, dev.size)
			}
			if !detached && g.Offset < h.areasEnd() {
				t.Fatalf("data at %d inside the %d-byte header area", g.Offset, h.areasEnd())
			}
		}
	}
	if h.v2 != nil {
		// The metadata re-encodes to JSON that parses to the same metadata.
		m := h.v2.meta()
		text := m.tree.encode(nil)
		tree, _, err := parseJSON(text)
		if err != nil || !bytes.Equal(tree.encode(nil), text) {
			t.Fatalf("the metadata does not re-encode stably: %v", err)
		}
	}
	// Unlocking costs a derivation per keyslot: only for cheap ones.
	for _, k := range info.Keyslots {
		if k.KDF.Iterations > 2000 || uint64(k.KDF.Memory)*uint64(k.KDF.Iterations) > 1<<14 {
			return
		}
	}
	for _, d := range info.Digests {
		if d.Iterations > 2000 {
			return
		}
	}
	vk, _, err := h.Unlock(context.Background(), dev, []byte("golden passphrase"), AnySlot)
	if err == nil {
		vk.Destroy()
	} else if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrUnsupported) {
		var se *SlotError
		if !errors.As(err, &se) {
			t.Fatalf("Unlock error of no class: %v", err)
		}
	}
}

// FuzzReadLUKS1 feeds arbitrary bytes as the start of a LUKS1 volume through
// Read, Info, Geometry and (when cheap) Unlock: no panic, every error of a
// class, what a successful read says holds.
func FuzzReadLUKS1(f *testing.F) {
	for _, g := range goldenHeaders(f) {
		if g.Version == 1 {
			f.Add(g.data[:luks1HeaderSize])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 8 {
			b = bytes.Clone(b)
			copy(b, magic1) // reach the LUKS1 parser
			binary.BigEndian.PutUint16(b[6:], 1)
		}
		fuzzRead(t, b, 4<<20)
	})
}

// FuzzReadLUKS2 builds a LUKS2 volume from a fuzzed binary header (the
// first 512 bytes of both copies) and fuzzed metadata text, and runs it
// through Read, Info, Geometry and (when cheap) Unlock. The inputs stay small
// (the fuzzer is slow on large ones): flags say whether to force the binary
// header's magic, version, sizes and offsets to sane values, to compute the
// checksums, and to give the secondary copy the same metadata or an older or
// newer seqid, so that mutations reach every check.
func FuzzReadLUKS2(f *testing.F) {
	for _, g := range goldenHeaders(f) {
		if g.Version == 2 {
			size := binary.BigEndian.Uint64(g.data[8:])
			area := g.data[luks2BinSize:size]
			f.Add(g.data[:512], area[:bytes.IndexByte(area, 0)], byte(0xff))
		}
	}
	f.Fuzz(func(t *testing.T, bin, text []byte, flags byte) {
		hdrSize := uint64(luks2MinHdrSize)
		if len(bin) >= 16 {
			if n := binary.BigEndian.Uint64(bin[8:]); n == 0x8000 || n == 0x10000 {
				hdrSize = n // larger layouts, kept small
			}
		}
		dev := make([]byte, 2*hdrSize)
		for i, off := range []uint64{0, hdrSize} {
			if i == 1 && flags&4 == 0 {
				break
			}
			c := dev[off : off+hdrSize]
			copy(c[:512], bin)
			if flags&1 != 0 {
				copy(c, magic1)
				if i == 1 {
					copy(c, magic2)
				}
				binary.BigEndian.PutUint16(c[6:], 2)
				binary.BigEndian.PutUint64(c[8:], hdrSize)
				binary.BigEndian.PutUint64(c[luks2OffHdrOffset:], off)
			}
			if i == 1 && flags&8 != 0 {
				binary.BigEndian.PutUint64(c[luks2OffSeqid:], binary.BigEndian.Uint64(c[luks2OffSeqid:])+uint64(flags>>4)-8)
			}
			copy(c[luks2BinSize:], text)
		}
		if flags&2 != 0 {
			fixChecksums(dev)
		}
		fuzzRead(t, dev, 20<<20)
	})
}

// FuzzJSON checks the metadata parser against encoding/json: what it accepts
// is JSON, and its encoding is stable.
func FuzzJSON(f *testing.F) {
	for _, g := range goldenHeaders(f) {
		if g.Version == 2 {
			area := g.data[luks2BinSize:binary.BigEndian.Uint64(g.data[8:])]
			f.Add(area[:bytes.IndexByte(area, 0)])
		}
	}
	f.Add([]byte(`{"a":[1,-2.5e3,true,false,null,"\u00e9\ud83d\udd11\n"],"b":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, end, err := parseJSON(b)
		if err != nil {
			if !errors.Is(err, errJSON) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		if !json.Valid(b[:end]) {
			t.Fatalf("accepted %q, which encoding/json refuses", b[:end])
		}
		text := v.encode(nil)
		if !json.Valid(text) {
			t.Fatalf("encoded %q, which encoding/json refuses", text)
		}
		v2, end2, err := parseJSON(text)
		if err != nil || end2 != len(text) || !bytes.Equal(v2.encode(nil), text) {
			t.Fatalf("the encoding %q does not parse back to itself: %v", text, err)
		}
	})
}
