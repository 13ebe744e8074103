package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
	"github.com/cryptvol/cryptvol/luks"
)

// infoJSON is the --json form of `cryptvol info`; field names are stable.
type infoJSON struct {
	Path          string     `json:"path"`
	Format        string     `json:"format"`
	FormatVersion int        `json:"format_version"`
	UUID          string     `json:"uuid"`
	Cipher        string     `json:"cipher"`
	KeyBits       int        `json:"key_bits"`
	SectorSize    int        `json:"sector_size"`
	DataOffset    int64      `json:"data_offset"`
	DataSize      int64      `json:"data_size"`
	FileSize      int64      `json:"file_size"`
	Sequence      uint64     `json:"sequence"`
	HeaderCopies  []copyJSON `json:"header_copies"`
	Keyslots      []slotJSON `json:"keyslots"`
	// LUKS is everything a LUKS header says (docs/LUKS.md), with package
	// luks's field names.
	LUKS *luks.Info `json:"luks,omitempty"`

	slotCount int // how many keyslots the format has
}

type copyJSON struct {
	Copy     string `json:"copy"` // "primary" or "backup"; LUKS2 "primary" or "secondary", LUKS1 "header"
	Offset   int64  `json:"offset"`
	Sequence uint64 `json:"sequence,omitempty"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
}

type slotJSON struct {
	Slot       int    `json:"slot"`
	KDF        string `json:"kdf"`
	MemoryKiB  uint32 `json:"memory_kib,omitempty"`
	Iterations uint32 `json:"iterations"`
	Threads    uint32 `json:"threads,omitempty"`
	AEAD       string `json:"aead"` // how the master key is wrapped
	Weak       bool   `json:"weak"` // cheap to guess: see weakSlot
}

func newInfoCommand(u *ui) *cobra.Command {
	var (
		asJSON, dumpKey bool
		pf              secretFlags
		ff              formatFlags
	)
	c := &cobra.Command{
		Use:   "info FILE",
		Short: "Show a vault's header: geometry, cipher, keyslots (no passphrase needed)",
		Long: `Show what a vault's header says: format version, uuid, cipher, sector size,
data offset and size, the state of both header copies, and each active keyslot
with its key derivation parameters, marked "weak" when they are below RFC 9106's
minimum for memory-constrained use (64 MiB and 3 passes: guessing its passphrase
is then fast). It needs no passphrase, shows no secret, and does not change the
file (a damaged header copy is reported, not repaired).

The header is authenticated only when the vault is unlocked, so this shows it
as stored.

With --dump-master-key it asks for a passphrase (or --passphrase-file and
--keyfile) and prints the vault's master key in hex instead: with it, dm-crypt
can read the data area without cryptvol (docs/FORMAT.md §6 gives the
commands). Anyone holding that key can decrypt the vault, whatever its
passphrases, and changing a passphrase does not change it: keep it as safe as
the data, or do not keep it.

A VeraCrypt or TrueCrypt volume (--type veracrypt or truecrypt) has nothing
readable without its passphrase: info asks for it, finds the header and shows
what it says (format, header version, PRF, encryption algorithm, data offset
and size), opening the file read-only.`,
		Example: `  cryptvol info vault.cv
  cryptvol info --json vault.cv
  cryptvol info --type veracrypt volume.hc`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			typ, _, err := ff.resolve(c)
			if err != nil {
				return err
			}
			if dumpKey {
				if asJSON {
					return &usageError{"--dump-master-key prints only the key: it has no --json form"}
				}
				if isTCrypt(typ) {
					return &usageError{"--dump-master-key is for cryptvol and LUKS vaults"}
				}
				return dumpMasterKey(u, args[0], &pf)
			}
			if isTCrypt(typ) {
				return tcryptInfo(c, u, args[0], &pf, &ff, asJSON)
			}
			if len(pf.keyfiles) > 0 || pf.file != "" {
				return &usageError{"--passphrase-file and --keyfile only go with --dump-master-key, or a VeraCrypt or TrueCrypt volume (--type veracrypt): info needs no passphrase"}
			}
			info, err := container.Inspect(args[0])
			if errors.Is(err, container.ErrUnknownFormat) {
				return withHint(err, fmt.Sprintf("a VeraCrypt or TrueCrypt volume has no recognisable header: `cryptvol info --type veracrypt %s` (or --type truecrypt) asks for its passphrase", args[0]))
			}
			if err != nil {
				return err
			}
			j := toInfoJSON(info)
			if asJSON {
				b, _ := json.MarshalIndent(j, "", "  ")
				u.printf("%s\n", b)
				return nil
			}
			printInfo(u, j)
			for _, s := range j.Keyslots {
				if s.Weak {
					u.hintf("%s", weakHint)
					break
				}
			}
			for _, cp := range j.HeaderCopies {
				if cp.Problem != "" {
					u.warnf("%s: %s header copy: %s", args[0], cp.Copy, cp.Problem)
					if j.LUKS != nil {
						u.hintf("`cryptvol header repair %s` repairs it from the other copy (opening a LUKS volume does not)", args[0])
					} else {
						u.hintf("opening the vault (or `cryptvol header repair %s`) repairs it from the other copy", args[0])
					}
				}
			}
			if j.LUKS != nil && j.LUKS.Unsupported != "" {
				u.warnf("%s: cryptvol cannot open this volume: %s", args[0], j.LUKS.Unsupported)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&dumpKey, "dump-master-key", false, "ask for a passphrase and print the master key in hex (sensitive: it decrypts the vault without any passphrase)")
	pf.register(c, false)
	ff.register(c, false)
	return c
}

// tcryptInfoJSON is the --json form of `cryptvol info --type veracrypt`;
// field names are stable.
type tcryptInfoJSON struct {
	Path       string `json:"path"`
	Format     string `json:"format"` // "veracrypt" or "truecrypt"
	Cipher     string `json:"cipher"` // dm-crypt's spelling, ciphers in the order applied
	KeyBits    int    `json:"key_bits"`
	DataOffset int64  `json:"data_offset"`
	DataSize   int64  `json:"data_size"`
	IVOffset   uint64 `json:"iv_offset"`
	FileSize   int64  `json:"file_size"`
	container.TCryptInfo
}

// tcryptInfo unlocks a VeraCrypt or TrueCrypt volume read-only and shows
// its header.
func tcryptInfo(c *cobra.Command, u *ui, path string, pf *secretFlags, ff *formatFlags, asJSON bool) error {
	v, err := u.unlockAs(c.Context(), c, path, pf, nil, accessRead, ff)
	if err != nil {
		return err
	}
	defer v.Close()
	ti, _ := v.TCryptInfo()
	g := v.Geometry()
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	size := st.Size()
	j := tcryptInfoJSON{Path: path, Format: string(v.Type()), Cipher: g.Cipher, KeyBits: g.KeySize * 8,
		DataOffset: g.Offset, DataSize: g.Size, IVOffset: g.IVOffset, FileSize: size, TCryptInfo: ti}
	if asJSON {
		b, _ := json.MarshalIndent(j, "", "  ")
		u.printf("%s\n", b)
		return nil
	}
	magic := map[string]string{"VERA": "VeraCrypt", "TRUE": "TrueCrypt"}[ti.Magic]
	u.printf("volume:       %s\n", path)
	u.printf("format:       %s (header version %d, needs version %s)\n", magic, ti.Version, ti.MinProgramVersion)
	u.printf("header:       %s\n", tcryptHeaderPlace(ti))
	u.printf("cipher:       %s (%s, %d-bit key)\n", ti.Algorithm, g.Cipher, g.KeySize*8)
	u.printf("key derivation: %s\n", describeTCryptKDF(ti))
	u.printf("sector size:  %d (data encrypted in 512-byte units from unit %d)\n", ti.SectorSize, g.IVOffset)
	u.printf("data offset:  %d (%s)\n", g.Offset, humanBytes(g.Offset))
	u.printf("data size:    %d (%s)\n", g.Size, humanBytes(g.Size))
	u.printf("file size:    %d\n", size)
	return nil
}

// describeTCryptHeader says which header opened: "normal header at 0",
// "backup hidden header at 299008", "system header at 31744".
func describeTCryptHeader(ti container.TCryptInfo) string {
	return fmt.Sprintf("%s (%s, %s)", tcryptHeaderPlace(ti), describeTCryptKDF(ti), ti.Algorithm)
}

func tcryptHeaderPlace(ti container.TCryptInfo) string {
	s := ti.Header + " header"
	if ti.Backup {
		s = "backup " + s
	}
	return fmt.Sprintf("%s at %d", s, ti.Offset)
}

func describeTCryptKDF(ti container.TCryptInfo) string {
	if ti.PRF == "argon2id" {
		return fmt.Sprintf("argon2id m=%s t=%d p=1", humanBytes(int64(ti.MemoryKiB)*1024), ti.Iterations)
	}
	return fmt.Sprintf("pbkdf2-%s, %d iterations", ti.PRF, ti.Iterations)
}

// dumpMasterKey unlocks the vault read-only (nothing is repaired: info does
// not change the file) and prints its master key in hex on stdout, after a
// warning on stderr, as cryptsetup's luksDump --dump-volume-key does.
func dumpMasterKey(u *ui, path string, pf *secretFlags) error {
	if _, err := container.Inspect(path); err != nil { // a damaged vault is reported before asking
		return err
	}
	pass, err := u.secret(pf, path)
	if err != nil {
		return err
	}
	defer wipeSecret(pass)
	v, err := container.Unlock(path, pass, &container.UnlockOptions{ReadOnly: true, Warn: func(m string) { u.warnf("%s: %s", path, m) }})
	if err != nil {
		return err
	}
	defer v.Close()
	var key keyBuffer
	defer key.wipe()
	if err := v.WriteKey(&key); err != nil {
		return err
	}
	if n := v.Geometry().KeySize; key.n != n {
		return fmt.Errorf("master key of %d bytes, want %d", key.n, n)
	}
	u.warnf("%s: the master key follows; it decrypts the vault without any passphrase, and changing passphrases does not change it: keep it as safe as the data", path)
	n := hex.Encode(key.hex[:], key.raw[:key.n])
	key.hex[n] = '\n'
	_, err = u.stdout.Write(key.hex[:n+1])
	return err
}

// maxKeySize bounds the master keys dumpMasterKey prints (XTS with AES-256
// takes 64 bytes).
const maxKeySize = 128

// keyBuffer receives the master key from Vault.WriteKey into fixed arrays
// that wipe clears, so no copy of the key is left on the heap.
type keyBuffer struct {
	raw [maxKeySize]byte
	hex [2*maxKeySize + 1]byte
	n   int
}

func (k *keyBuffer) Write(p []byte) (int, error) {
	if k.n+len(p) > len(k.raw) {
		return 0, io.ErrShortWrite
	}
	k.n += copy(k.raw[k.n:], p)
	return len(p), nil
}

func (k *keyBuffer) wipe() {
	clear(k.raw[:])
	clear(k.hex[:])
}

func toInfoJSON(info *container.Info) infoJSON {
	g := info.Geometry
	j := infoJSON{
		Path: info.Path, Format: string(info.Type), FormatVersion: info.Version, UUID: info.UUID,
		Cipher: g.Cipher, KeyBits: g.KeySize * 8, SectorSize: g.SectorSize,
		DataOffset: g.Offset, DataSize: g.Size, FileSize: info.FileSize, Sequence: info.Sequence,
		Keyslots: []slotJSON{}, slotCount: info.SlotCount, LUKS: info.LUKS,
	}
	copies := []struct {
		name string
		s    container.CopyStatus
	}{{"primary", info.Primary}, {"backup", info.Backup}}
	switch {
	case info.LUKS != nil && info.LUKS.Version == 1:
		copies = copies[:1]
		copies[0].name = "header"
	case info.LUKS != nil:
		copies[1].name = "secondary"
	}
	for _, c := range copies {
		j.HeaderCopies = append(j.HeaderCopies, copyJSON{Copy: c.name, Offset: c.s.Offset, Sequence: c.s.Sequence, OK: c.s.Problem == "", Problem: c.s.Problem})
	}
	for _, s := range info.Keyslots {
		j.Keyslots = append(j.Keyslots, slotJSON{Slot: s.Slot, KDF: s.KDF, MemoryKiB: s.Memory, Iterations: s.Iterations, Threads: s.Threads, AEAD: s.Wrap, Weak: s.Weak})
	}
	return j
}

// cipherNames describes the ciphers people know by another name.
var cipherNames = map[string]string{"aes-xts-plain64/512": "XTS-AES-256"}

func printInfo(u *ui, j infoJSON) {
	u.printf("vault:        %s\n", j.Path)
	u.printf("format:       %s version %d\n", j.Format, j.FormatVersion)
	u.printf("uuid:         %s\n", j.UUID)
	if j.LUKS != nil && j.LUKS.Label != "" {
		u.printf("label:        %s\n", j.LUKS.Label)
	}
	if name := cipherNames[fmt.Sprintf("%s/%d", j.Cipher, j.KeyBits)]; name != "" {
		u.printf("cipher:       %s (%s, %d-bit key)\n", j.Cipher, name, j.KeyBits)
	} else {
		u.printf("cipher:       %s (%d-bit key)\n", j.Cipher, j.KeyBits)
	}
	u.printf("sector size:  %d\n", j.SectorSize)
	u.printf("data offset:  %d (%s)\n", j.DataOffset, humanBytes(int64(j.DataOffset)))
	if j.LUKS != nil && j.LUKS.Dynamic {
		u.printf("data size:    %d (%s, to the end of the file)\n", j.DataSize, humanBytes(int64(j.DataSize)))
	} else {
		u.printf("data size:    %d (%s)\n", j.DataSize, humanBytes(int64(j.DataSize)))
	}
	u.printf("file size:    %d\n", j.FileSize)
	u.printf("sequence:     %d\n", j.Sequence)
	for _, c := range j.HeaderCopies {
		state := "ok"
		if !c.OK {
			state = c.Problem
		}
		u.printf("%-13s %s (offset %d)\n", c.Copy+" copy:", state, c.Offset)
	}
	u.printf("keyslots:     %d of %d active\n", len(j.Keyslots), j.slotCount)
	for _, s := range j.Keyslots {
		kdfDesc := fmt.Sprintf("%s t=%d", s.KDF, s.Iterations)
		switch {
		case s.KDF == "argon2id" && j.LUKS == nil:
			kdfDesc = kdf.Params{Memory: s.MemoryKiB, Iterations: s.Iterations, Threads: s.Threads}.String()
		case s.KDF == kdf.Argon2id || s.KDF == kdf.Argon2i:
			kdfDesc = kdf.Argon2{Variant: s.KDF, Memory: s.MemoryKiB, Iterations: s.Iterations, Threads: s.Threads}.String()
		case strings.HasPrefix(s.KDF, "pbkdf2"):
			kdfDesc = fmt.Sprintf("%s iterations=%d", s.KDF, s.Iterations)
		}
		weak := ""
		if s.Weak {
			weak = ", weak"
		}
		u.printf("  slot %d:     %s, %s%s\n", s.Slot, kdfDesc, s.AEAD, weak)
	}
	if j.LUKS != nil {
		for _, k := range j.LUKS.Keyslots {
			if k.Problem != "" {
				u.printf("  slot %d:     not usable: %s\n", k.Slot, k.Problem)
			}
		}
		u.printf("tokens:       %d (kept as they are)\n", len(j.LUKS.Tokens))
	}
}
