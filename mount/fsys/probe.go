package fsys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoFilesystem is returned by Probe when no known filesystem signature is
// found: a new (or wrongly decrypted) volume, or a filesystem Probe does not
// know.
var ErrNoFilesystem = errors.New("no known filesystem found")

// Where the signatures Probe looks for live, counted from the start of the
// device.
const (
	probeXFSMagicOff   = 0             // "XFSB", first bytes of the superblock
	probeExtSuperOff   = 1024          // ext2/3/4 superblock
	probeExtMagicOff   = 1024 + 0x38   // 0xEF53, little-endian
	probeBtrfsMagicOff = 64<<10 + 0x40 // "_BHRfS_M" in the primary superblock
	probeLen           = probeBtrfsMagicOff + 8
)

// Probe says which filesystem is on the block device dev, from its superblock
// signatures: "ext2", "ext3", "ext4", "xfs", "btrfs" or "vfat". It fails with
// ErrNoFilesystem when there is none it knows, and refuses to guess when it
// finds several (an old signature a new filesystem did not erase), as blkid
// does: mounting the wrong one could damage the other.
func Probe(dev string) (string, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	defer f.Close()
	fstype, err := probeFS(f)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", dev, err)
	}
	return fstype, nil
}

// probeFS reads the first 64 KiB and a little more from r and matches the
// signatures. A device shorter than that is probed on what it has.
func probeFS(r io.ReaderAt) (string, error) {
	buf := make([]byte, probeLen)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	buf = buf[:n]
	at := func(off int, sig string) bool {
		return len(buf) >= off+len(sig) && string(buf[off:off+len(sig)]) == sig
	}
	var found []string
	if at(probeXFSMagicOff, "XFSB") {
		found = append(found, "xfs")
	}
	if at(probeBtrfsMagicOff, "_BHRfS_M") {
		found = append(found, "btrfs")
	}
	if at(probeExtMagicOff, "\x53\xef") {
		found = append(found, probeExtVersion(buf[probeExtSuperOff:]))
	}
	if probeVFAT(buf) {
		found = append(found, "vfat")
	}
	switch len(found) {
	case 0:
		return "", ErrNoFilesystem
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("signatures of %s found: ambiguous, not guessing (wipe the stale ones)", strings.Join(found, " and "))
}

// probeExtVersion tells ext2, ext3 and ext4 apart the way blkid does: ext4
// if any feature beyond ext3's is on, else ext3 if it has a journal.
func probeExtVersion(sb []byte) string {
	const (
		compatHasJournal = 0x4
		// ext3 knows FILETYPE, RECOVER, META_BG (incompat) and
		// SPARSE_SUPER, LARGE_FILE, BTREE_DIR (ro_compat).
		ext3Incompat = 0x2 | 0x4 | 0x10
		ext3ROCompat = 0x1 | 0x2 | 0x4
	)
	compat := binary.LittleEndian.Uint32(sb[0x5c:])
	incompat := binary.LittleEndian.Uint32(sb[0x60:])
	roCompat := binary.LittleEndian.Uint32(sb[0x64:])
	switch {
	case incompat&^ext3Incompat != 0 || roCompat&^ext3ROCompat != 0:
		return "ext4"
	case compat&compatHasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// probeVFAT checks a FAT boot sector: the 0x55AA signature, a jump
// instruction, sane BIOS parameter block fields (which also rule out NTFS and
// exFAT, whose FAT count is 0) and the "FAT" type string mkfs.fat writes.
func probeVFAT(b []byte) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa {
		return false
	}
	if !(b[0] == 0xeb && b[2] == 0x90 || b[0] == 0xe9) {
		return false
	}
	sectorSize := binary.LittleEndian.Uint16(b[11:])
	perCluster := b[13]
	reserved := binary.LittleEndian.Uint16(b[14:])
	fats := b[16]
	media := b[21]
	switch {
	case sectorSize < 512 || sectorSize > 4096 || sectorSize&(sectorSize-1) != 0,
		perCluster == 0 || perCluster&(perCluster-1) != 0,
		reserved == 0, fats == 0 || fats > 4,
		media != 0xf0 && media < 0xf8:
		return false
	}
	return bytes.HasPrefix(b[54:], []byte("FAT1")) || bytes.HasPrefix(b[54:], []byte("FAT ")) ||
		bytes.HasPrefix(b[82:], []byte("FAT32   "))
}
