package vmtest

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logBuilder writes a write log in blklogwrites' format, as qemu does.
type logBuilder struct {
	b  bytes.Buffer
	n  uint64
	ss int
}

func newLogBuilder(ss int) *logBuilder {
	l := &logBuilder{ss: ss}
	l.b.Write(make([]byte, ss))
	return l
}

func (l *logBuilder) entry(sector, sectors, flags uint64, data []byte) {
	hdr := make([]byte, l.ss)
	binary.LittleEndian.PutUint64(hdr[0:], sector)
	binary.LittleEndian.PutUint64(hdr[8:], sectors)
	binary.LittleEndian.PutUint64(hdr[16:], flags)
	l.b.Write(hdr)
	l.b.Write(data)
	l.n++
}

func (l *logBuilder) bytes(nEntries uint64) []byte {
	out := bytes.Clone(l.b.Bytes())
	binary.LittleEndian.PutUint64(out[0:], logMagic)
	binary.LittleEndian.PutUint64(out[8:], logVersion)
	binary.LittleEndian.PutUint64(out[16:], nEntries)
	binary.LittleEndian.PutUint32(out[24:], uint32(l.ss))
	return out
}

func TestReadLogReplay(t *testing.T) {
	dir := t.TempDir()
	l := newLogBuilder(512)
	a := bytes.Repeat([]byte{0xaa}, 1024)
	b := bytes.Repeat([]byte{0xbb}, 512)
	l.entry(2, 2, 0, a)                 // sectors 2-3
	l.entry(0, 0, logFlushFlag, nil)    // flush
	l.entry(3, 1, 0, b)                 // sector 3
	l.entry(2, 1, logDiscardFlag, nil)  // discard sector 2
	l.entry(1, 1, 0, make([]byte, 512)) // write zeroes, logged as data
	path := filepath.Join(dir, "log")
	writeFile(t, path, l.bytes(l.n))
	wl, err := ReadLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	if len(wl.Entries) != 5 || !wl.Entries[1].Flush() || !wl.Entries[3].Discard() {
		t.Fatalf("entries %+v", wl.Entries)
	}
	img := filepath.Join(dir, "img")
	if err := createSparse(img, 8*512); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	defer f.Close()
	for _, e := range wl.Entries {
		if err := wl.Apply(e, f); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(img)
	want := make([]byte, 8*512)
	copy(want[3*512:], b)
	if !bytes.Equal(got, want) {
		t.Fatal("replayed image differs")
	}
	// Entries past nr_entries (after the last superblock update) are not read.
	writeFile(t, path, l.bytes(2))
	if wl2, err := ReadLog(path); err != nil || len(wl2.Entries) != 2 {
		t.Fatalf("2 counted entries: %v", err)
	} else {
		wl2.Close()
	}
}

func TestReadLogHostile(t *testing.T) {
	dir := t.TempDir()
	good := newLogBuilder(512)
	good.entry(0, 1, 0, make([]byte, 512))
	for _, tc := range []struct {
		name, want string
		mutate     func([]byte) []byte
	}{
		{"magic", "bad magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"version", "unsupported version", func(b []byte) []byte { b[8] = 2; return b }},
		{"sector size", "bad sector size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 1000); return b }},
		{"huge sector size", "bad sector size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 1<<30); return b }},
		{"too many entries", "entries in a log of", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<40); return b }},
		{"entry past the end", "past the end", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 2); return b }},
		{"flags", "unknown flags", func(b []byte) []byte { b[512+16] = 0x80; return b }},
		{"data past the end", "runs past the end", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[512+8:], 2); return b }},
		{"huge length", "beyond any disk", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[512+8:], 1<<60); return b }},
		{"short", "superblock", func(b []byte) []byte { return b[:10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "log")
			writeFile(t, path, tc.mutate(good.bytes(good.n)))
			wl, err := ReadLog(path)
			if err == nil {
				wl.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// TestMarker finds the workload's markers in a log.
func TestMarker(t *testing.T) {
	l := newLogBuilder(512)
	m := make([]byte, 512)
	copy(m, markerMagic+"done 12\n")
	l.entry(uint64((diskSize-markerArea)/512), 1, 0, m)
	l.entry(5, 1, 0, m) // the same bytes elsewhere: not a marker
	path := filepath.Join(t.TempDir(), "log")
	writeFile(t, path, l.bytes(l.n))
	wl, err := ReadLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	if s, ok := wl.Marker(wl.Entries[0], diskSize); !ok || s != "done 12" {
		t.Fatalf("marker %q %v", s, ok)
	}
	if _, ok := wl.Marker(wl.Entries[1], diskSize); ok {
		t.Fatal("a write elsewhere taken for a marker")
	}
}

// FuzzReadLog: any file is either refused or parsed into entries whose data
// lies within the file and whose ranges fit a disk, with no panic and no
// allocation out of proportion to the file.
func FuzzReadLog(f *testing.F) {
	for _, seed := range readLogSeeds() {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "log")
		writeFile(t, path, b)
		wl, err := ReadLog(path)
		if err != nil {
			return
		}
		defer wl.Close()
		for _, e := range wl.Entries {
			if off, n := int64(e.Sector)*wl.SectorSize, int64(e.Sectors)*wl.SectorSize; off < 0 || n < 0 || off+n < 0 || off+n > maxLogDisk {
				t.Fatalf("entry %+v addresses bytes %d+%d", e, off, n)
			}
			if d, err := wl.Data(e); err != nil || len(d) > len(b) {
				t.Fatalf("entry %+v: %d bytes of data from a %d-byte log (%v)", e, len(d), len(b), err)
			}
			wl.Marker(e, diskSize)
		}
	})
}

func readLogSeeds() [][]byte {
	l := newLogBuilder(512)
	l.entry(2, 2, 0, make([]byte, 1024))
	l.entry(0, 0, logFlushFlag, nil)
	l.entry(9, 4, logDiscardFlag, nil)
	m := make([]byte, 512)
	copy(m, markerMagic+"begin 0\n")
	l.entry(uint64((diskSize-markerArea)/512), 1, 0, m)
	big := newLogBuilder(4096)
	big.entry(1, 1, 0, make([]byte, 4096))
	return [][]byte{l.bytes(l.n), l.bytes(1), big.bytes(big.n)}
}

func TestReadLogSeeds(t *testing.T) {
	seeds := readLogSeeds()
	if len(seeds) == 0 {
		t.Fatal("no seeds for FuzzReadLog")
	}
	for i, s := range seeds {
		path := filepath.Join(t.TempDir(), "log")
		writeFile(t, path, s)
		wl, err := ReadLog(path)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		wl.Close()
	}
}
