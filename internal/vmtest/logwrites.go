package vmtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The write log of qemu's blklogwrites block driver (block/blklogwrites.c),
// which follows Linux's dm-log-writes format. All fields are little-endian;
// the log is made of log sectors of a size the superblock gives:
//
//	sector 0: superblock  magic u64 | version u64 | nr_entries u64 | sectorsize u32
//	then per entry: one sector  sector u64 | nr_sectors u64 | flags u64 | data_len u64
//	                and nr_sectors sectors of data (none for a discard)
//
// sector and nr_sectors count log sectors of the disk written. A flush is an
// entry with the flush flag and no data. qemu logs each request when the disk
// has completed it, so a write acknowledged before a flush was issued is
// logged before that flush; the superblock's nr_entries is brought up to
// date at every flush (entries after the last flush may be missing from it).
const (
	logFlushFlag   = 1 << 0
	logFUAFlag     = 1 << 1
	logDiscardFlag = 1 << 2
	logMarkFlag    = 1 << 3
	logFlagMask    = logFlushFlag | logFUAFlag | logDiscardFlag | logMarkFlag

	logMagic   = 0x6a736677736872
	logVersion = 1
)

// LogEntry is one request of a write log.
type LogEntry struct {
	Sector, Sectors uint64 // in log sectors
	Flags           uint64
	dataOff         int64 // where the data is in the log file
}

// Flush reports whether the entry is a flush.
func (e LogEntry) Flush() bool { return e.Flags&logFlushFlag != 0 }

// Discard reports whether the entry discards its range (and has no data).
func (e LogEntry) Discard() bool { return e.Flags&logDiscardFlag != 0 }

// WriteLog is a parsed write log. Its data stays in the file.
type WriteLog struct {
	f          *os.File
	SectorSize int64
	Entries    []LogEntry
}

// maxLogSector bounds the log's sector size (qemu allows up to 16 MiB), and
// maxLogDisk the disk an entry may address (1 PiB), so byte offsets cannot
// overflow.
const (
	maxLogSector = 1 << 24
	maxLogDisk   = 1 << 50
)

// ReadLog parses the log at path: the superblock, then each entry it counts,
// every one checked against the file's size before it is used.
func ReadLog(path string) (*WriteLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l, err := readLog(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write log %s: %w", path, err)
	}
	return l, nil
}

func readLog(f *os.File) (*WriteLog, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	var super [28]byte
	if _, err := f.ReadAt(super[:], 0); err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	if m := binary.LittleEndian.Uint64(super[0:]); m != logMagic {
		return nil, fmt.Errorf("bad magic %#x", m)
	}
	if v := binary.LittleEndian.Uint64(super[8:]); v != logVersion {
		return nil, fmt.Errorf("unsupported version %d", v)
	}
	n := binary.LittleEndian.Uint64(super[16:])
	ss := int64(binary.LittleEndian.Uint32(super[24:]))
	if ss < 512 || ss > maxLogSector || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("bad sector size %d", ss)
	}
	sectors := uint64(size / ss)
	if n > sectors {
		return nil, fmt.Errorf("%d entries in a log of %d sectors", n, sectors)
	}
	l := &WriteLog{f: f, SectorSize: ss, Entries: make([]LogEntry, 0, n)}
	cur := uint64(1)
	var hdr [32]byte
	for i := uint64(0); i < n; i++ {
		if cur >= sectors {
			return nil, fmt.Errorf("entry %d: past the end of the log", i)
		}
		if _, err := f.ReadAt(hdr[:], int64(cur)*ss); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		e := LogEntry{
			Sector:  binary.LittleEndian.Uint64(hdr[0:]),
			Sectors: binary.LittleEndian.Uint64(hdr[8:]),
			Flags:   binary.LittleEndian.Uint64(hdr[16:]),
			dataOff: int64(cur+1) * ss,
		}
		if e.Flags&^logFlagMask != 0 {
			return nil, fmt.Errorf("entry %d: unknown flags %#x", i, e.Flags)
		}
		if e.Sectors > sectors && !e.Discard() || e.Sector > maxLogDisk/uint64(ss) || e.Sectors > maxLogDisk/uint64(ss)-e.Sector {
			return nil, fmt.Errorf("entry %d: %d sectors at %d, beyond any disk", i, e.Sectors, e.Sector)
		}
		cur++
		if !e.Discard() {
			cur += e.Sectors
			if cur > sectors {
				return nil, fmt.Errorf("entry %d: its data runs past the end of the log", i)
			}
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// Close closes the log file.
func (l *WriteLog) Close() error { return l.f.Close() }

// Apply replays entry e onto the disk image img: its data is written where
// the guest wrote it, a discarded range is punched out (it reads as zeros,
// as the empty image did before), a flush does nothing.
func (l *WriteLog) Apply(e LogEntry, img *os.File) error {
	off, n := int64(e.Sector)*l.SectorSize, int64(e.Sectors)*l.SectorSize
	switch {
	case e.Flush() && n == 0:
		return nil
	case e.Discard():
		return unix.Fallocate(int(img.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	_, err := io.Copy(io.NewOffsetWriter(img, off), io.NewSectionReader(l.f, e.dataOff, n))
	return err
}

// Data returns the data an entry wrote (nil for flushes and discards).
func (l *WriteLog) Data(e LogEntry) ([]byte, error) {
	if e.Discard() || e.Sectors == 0 {
		return nil, nil
	}
	b := make([]byte, int64(e.Sectors)*l.SectorSize)
	if _, err := l.f.ReadAt(b, e.dataOff); err != nil {
		return nil, err
	}
	return b, nil
}

// Marker returns the text of a marker the workload wrote (see markerFile)
// if e is a write of the marker sector of a disk of diskBytes.
func (l *WriteLog) Marker(e LogEntry, diskBytes int64) (string, bool) {
	if e.Discard() || e.Sectors == 0 || int64(e.Sector)*l.SectorSize != diskBytes-markerArea {
		return "", false
	}
	b := make([]byte, 512)
	if _, err := l.f.ReadAt(b, e.dataOff); err != nil {
		return "", false
	}
	s, ok := strings.CutPrefix(string(b), markerMagic)
	if !ok {
		return "", false
	}
	s, _, _ = strings.Cut(s, "\n")
	return s, true
}
