package tcrypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func testKeys() []byte {
	k := make([]byte, KeyAreaSize)
	for i := range k {
		k[i] = byte(i*7 + 3)
	}
	return k
}

func TestEncodeParse(t *testing.T) {
	h := NewHeader(36864)
	h.Reserved1[3] = 9
	plain := h.Encode(testKeys())
	keys := make([]byte, KeyAreaSize)
	got, err := Parse(plain, keys)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Errorf("got %+v, want %+v", got, h)
	}
	if !bytes.Equal(keys, testKeys()) {
		t.Error("key area differs")
	}
	if got.Hidden() || got.System() {
		t.Error("a normal header reads as hidden or system")
	}
}

// reseal recomputes both checksums after a test changed plain.
func reseal(plain []byte) {
	binary.BigEndian.PutUint32(plain[offKeysCRC:], crc32.ChecksumIEEE(plain[offKeys:]))
	binary.BigEndian.PutUint32(plain[offHeaderCRC:], crc32.ChecksumIEEE(plain[:offHeaderCRC]))
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		name   string
		change func(p []byte)
		field  string // "" : not a header at all
	}{
		{"magic", func(p []byte) { copy(p, "XERA"); reseal(p) }, ""},
		{"keys checksum", func(p []byte) { p[offKeys+5] ^= 1 }, ""},
		{"header checksum", func(p []byte) { p[offVolumeSize] ^= 1 }, ""},
		{"version 2", func(p []byte) { binary.BigEndian.PutUint16(p[offVersion:], 2); reseal(p) }, "version"},
		{"version 6", func(p []byte) { binary.BigEndian.PutUint16(p[offVersion:], 6); reseal(p) }, "version"},
		{"VERA version 3", func(p []byte) { binary.BigEndian.PutUint16(p[offVersion:], 3); reseal(p) }, "version"},
		{"sector size 0", func(p []byte) { binary.BigEndian.PutUint32(p[offSectorSize:], 0); reseal(p) }, "sector size"},
		{"sector size 8192", func(p []byte) { binary.BigEndian.PutUint32(p[offSectorSize:], 8192); reseal(p) }, "sector size"},
		{"sector size 513", func(p []byte) { binary.BigEndian.PutUint32(p[offSectorSize:], 513); reseal(p) }, "sector size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewHeader(36864).Encode(testKeys())
			c.change(p)
			_, err := Parse(p, nil)
			var he *HeaderError
			switch {
			case err == nil:
				t.Fatal("accepted")
			case c.field == "" && errors.As(err, &he):
				t.Fatalf("a non-header reported as a bad header: %v", err)
			case c.field != "" && (!errors.As(err, &he) || he.Field != c.field):
				t.Fatalf("got %v, want a %s error", err, c.field)
			}
		})
	}
	if _, err := Parse(make([]byte, 100), nil); err == nil {
		t.Error("a short buffer parsed")
	}
}

// TestParseVersion3 checks that TrueCrypt 5's header checksum is not
// required (it had none), and its sector size defaults to 512.
func TestParseVersion3(t *testing.T) {
	h := &Header{Magic: MagicTrueCrypt, Version: 3, MinProgramVersion: 0x0500, VolumeSize: 18944, EncryptedAreaLength: 18944}
	p := h.Encode(testKeys())
	p[offHeaderCRC] ^= 0xff
	got, err := Parse(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.SectorSize != 512 {
		t.Errorf("sector size %d, want 512", got.SectorSize)
	}
}

func TestArea(t *testing.T) {
	const file = 299008 // the size of VeraCrypt's smallest FAT volume
	normal := Location{Kind: Normal}
	hiddenLoc := Location{Kind: Hidden, Offset: HeaderAreaSize}
	vc := func(change func(h *Header)) *Header {
		h := NewHeader(file - DataOffset - BackupAreaSize)
		if change != nil {
			change(h)
		}
		return h
	}
	hidden := func(start, size uint64) *Header {
		return vc(func(h *Header) {
			h.HiddenVolumeSize, h.VolumeSize, h.EncryptedAreaStart, h.EncryptedAreaLength = size, size, start, size
		})
	}
	cases := []struct {
		name  string
		h     *Header
		loc   Location
		size  int64
		want  Area
		field string
	}{
		{"normal", vc(nil), normal, file, Area{DataOffset, 36864, 256}, ""},
		{"backup normal", vc(nil), Location{Kind: Normal, Backup: true, Offset: file - BackupAreaSize}, file, Area{DataOffset, 36864, 256}, ""},
		{"file grown after", vc(nil), normal, file + 1<<20, Area{DataOffset, 36864, 256}, ""},
		{"truncated file", vc(nil), normal, file - 512, Area{}, "volume size"},
		{"volume size past end", vc(func(h *Header) { h.VolumeSize, h.EncryptedAreaLength = 1<<40, 1<<40 }), normal, file, Area{}, "volume size"},
		{"volume size 2^63", vc(func(h *Header) { h.VolumeSize = 1 << 63 }), normal, file, Area{}, "volume size"},
		{"volume size 0", vc(func(h *Header) { h.VolumeSize, h.EncryptedAreaLength = 0, 0 }), normal, file, Area{}, "volume size"},
		{"volume size odd", vc(func(h *Header) { h.VolumeSize = 1000 }), normal, file, Area{}, "volume size"},
		{"start in header area", vc(func(h *Header) { h.EncryptedAreaStart = 512 }), normal, file, Area{}, "encrypted area start"},
		{"start elsewhere", vc(func(h *Header) { h.EncryptedAreaStart = 2 * DataOffset }), normal, file + DataOffset, Area{}, "encrypted area start"},
		{"length differs", vc(func(h *Header) { h.EncryptedAreaLength = 512 }), normal, file, Area{}, "encrypted area length"},
		{"start 2^64-512", vc(func(h *Header) { h.EncryptedAreaStart = 1<<64 - 512 }), normal, file, Area{}, "encrypted area start"},
		{"in place", vc(func(h *Header) { h.Flags = FlagInPlace }), normal, file, Area{}, "flags"},
		{"system flag on a volume", vc(func(h *Header) { h.Flags = FlagSystem }), normal, file, Area{}, "flags"},
		{"hidden size in a normal header", vc(func(h *Header) { h.HiddenVolumeSize = 512 }), normal, file, Area{}, "hidden volume size"},
		{"hidden", hidden(165888, 47104), hiddenLoc, 348160, Area{165888, 47104, 324}, ""},
		{"hidden into the backup area", hidden(165888, 47104+BackupAreaSize), hiddenLoc, 348160, Area{}, "volume size"},
		{"hidden in the header area", hidden(HeaderAreaSize, 47104), hiddenLoc, 348160, Area{}, "encrypted area start"},
		{"hidden without hidden size", vc(nil), hiddenLoc, file, Area{}, "hidden volume size"},
		{"v4 header in TrueCrypt 5's place", hidden(165888, 47104), Location{Kind: Hidden, Legacy: true, Offset: 348160 - hiddenOffsetV3}, 348160, Area{}, "version"},
		{"TrueCrypt 5", &Header{Magic: MagicTrueCrypt, Version: 3, VolumeSize: 18944, EncryptedAreaLength: 18944, SectorSize: 512}, normal, 19456, Area{512, 18944, 1}, ""},
		{"TrueCrypt 5 hidden", &Header{Magic: MagicTrueCrypt, Version: 3, HiddenVolumeSize: 8192, VolumeSize: 8192, SectorSize: 512},
			Location{Kind: Hidden, Legacy: true, Offset: 19456 - hiddenOffsetV3}, 19456, Area{19456 - 8192 - 1536, 8192, (19456 - 8192 - 1536) / 512}, ""},
		{"TrueCrypt 5 hidden too big", &Header{Magic: MagicTrueCrypt, Version: 3, HiddenVolumeSize: 1 << 40, VolumeSize: 8192, SectorSize: 512},
			Location{Kind: Hidden, Legacy: true, Offset: 19456 - hiddenOffsetV3}, 19456, Area{}, "volume size"},
		{"TrueCrypt 5 hidden, odd file size", &Header{Magic: MagicTrueCrypt, Version: 3, HiddenVolumeSize: 8192, VolumeSize: 8192, SectorSize: 512},
			Location{Kind: Hidden, Legacy: true, Offset: 19457 - hiddenOffsetV3}, 19457, Area{}, "encrypted area start"},
		{"TrueCrypt 5 hidden at 64 KiB", &Header{Magic: MagicTrueCrypt, Version: 3, HiddenVolumeSize: 8192, SectorSize: 512}, hiddenLoc, 1 << 20, Area{}, "version"},
		{"system", &Header{Magic: MagicVeraCrypt, Version: 5, VolumeSize: 16 << 20, EncryptedAreaStart: 1 << 20, EncryptedAreaLength: 60 << 30, Flags: FlagSystem, SectorSize: 512},
			Location{Kind: System, Offset: SystemHeaderOffset}, 18 << 20, Area{1 << 20, 16 << 20, 2048}, ""},
		{"system unfinished", &Header{Magic: MagicVeraCrypt, Version: 5, VolumeSize: 16 << 20, EncryptedAreaStart: 1 << 20, EncryptedAreaLength: 8 << 20, Flags: FlagSystem, SectorSize: 512},
			Location{Kind: System, Offset: SystemHeaderOffset}, 18 << 20, Area{}, "encrypted area length"},
		{"system over its header", &Header{Magic: MagicVeraCrypt, Version: 5, VolumeSize: 16 << 20, EncryptedAreaStart: 0, EncryptedAreaLength: 16 << 20, Flags: FlagSystem, SectorSize: 512},
			Location{Kind: System, Offset: SystemHeaderOffset}, 18 << 20, Area{}, "encrypted area start"},
		{"system past the image", &Header{Magic: MagicVeraCrypt, Version: 5, VolumeSize: 16 << 20, EncryptedAreaStart: 1 << 20, EncryptedAreaLength: 16 << 20, Flags: FlagSystem, SectorSize: 512},
			Location{Kind: System, Offset: SystemHeaderOffset}, 8 << 20, Area{}, "volume size"},
		{"volume header where system one should be", vc(nil), Location{Kind: System, Offset: SystemHeaderOffset}, file, Area{}, "flags"},
		{"negative file size", vc(nil), normal, -1, Area{}, "file size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.h.Area(c.loc, c.size)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Fatalf("got %+v, want %+v", got, c.want)
				}
				return
			}
			var he *HeaderError
			if !errors.As(err, &he) || he.Field != c.field {
				t.Fatalf("got %v (%+v), want a %s error", err, got, c.field)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("%q does not name the field", err)
			}
		})
	}
}
