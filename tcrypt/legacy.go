package tcrypt

import (
	"context"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/awnumar/memguard"
	"golang.org/x/crypto/blowfish"
	"golang.org/x/crypto/cast5"
	"golang.org/x/crypto/twofish"

	"github.com/cryptvol/cryptvol/cipher/serpent"
)

// TrueCrypt 4.3a and older (docs/VERACRYPT.md, "TrueCrypt 4 and older"):
// their headers are encrypted in LRW mode (TrueCrypt 4.1 to 4.3a) or CBC
// mode (TrueCrypt 4.0 and older), under keys derived with PBKDF2 over
// HMAC-RIPEMD-160 (2000 iterations), HMAC-SHA-1 (2000) or HMAC-Whirlpool
// (1000). Cryptvol does not open these volumes; it recognises their headers,
// once every XTS attempt has failed, so that it can say why it refuses one
// instead of calling the passphrase wrong. The header encryptions and the
// layout of the header key are cryptsetup's (lib/tcrypt/tcrypt.c, its
// tcrypt_cipher table and TCRYPT_decrypt_hdr), which opens such volumes.

// legacyMode is how a legacy algorithm encrypts the 448 bytes of a header.
type legacyMode int

const (
	// modeLRW: each cipher in turn in LRW mode over the 448 bytes, blocks
	// numbered from 1, every cipher with the same tweak key (the header
	// key's first 16 bytes).
	modeLRW legacyMode = iota
	// modeOuterCBC: one CBC chain over the cascade as a single block
	// cipher, then the whitening; a single cipher is the same as inner.
	modeOuterCBC
	// modeInnerCBC: each cipher in turn in CBC, each followed by the
	// whitening (TrueCrypt's Blowfish cascades).
	modeInnerCBC
)

// The header key's layout for the legacy modes: the LRW tweak key, or the
// CBC IV (its first block-size bytes) and whitening (bytes 8 to 15), at its
// start; the ciphers' keys from byte 32 on, one after the other in the
// order the ciphers are applied.
const (
	legacyKeysOffset  = 32
	lrwTweakKeySize   = 16
	whiteningOffset   = 8
	whiteningSize     = 8
	legacyFirstLRWIdx = 1 // the first block of a header is LRW block 1
)

// legacyAlg is one of TrueCrypt's legacy header encryptions.
type legacyAlg struct {
	name    string // TrueCrypt's: the cipher applied last first
	mode    legacyMode
	ciphers []string // in the order applied when encrypting
}

// legacyAlgs are cryptsetup's legacy tcrypt_cipher entries, in its order.
// Blowfish in LRW mode (TrueCrypt 4.1 to 4.3a offered it, with 64-bit LRW)
// is left out, as cryptsetup leaves it out: it is not an LRW over a 128-bit
// block, and nothing here could check it.
var legacyAlgs = []legacyAlg{
	{"AES", modeLRW, []string{"aes"}},
	{"Serpent", modeLRW, []string{"serpent"}},
	{"Twofish", modeLRW, []string{"twofish"}},
	{"AES-Twofish", modeLRW, []string{"twofish", "aes"}},
	{"AES-Twofish-Serpent", modeLRW, []string{"serpent", "twofish", "aes"}},
	{"Serpent-AES", modeLRW, []string{"aes", "serpent"}},
	{"Serpent-Twofish-AES", modeLRW, []string{"aes", "twofish", "serpent"}},
	{"Twofish-Serpent", modeLRW, []string{"serpent", "twofish"}},

	{"AES", modeOuterCBC, []string{"aes"}},
	{"Serpent", modeOuterCBC, []string{"serpent"}},
	{"Twofish", modeOuterCBC, []string{"twofish"}},
	{"AES-Twofish", modeOuterCBC, []string{"twofish", "aes"}},
	{"AES-Twofish-Serpent", modeOuterCBC, []string{"serpent", "twofish", "aes"}},
	{"Serpent-AES", modeOuterCBC, []string{"aes", "serpent"}},
	{"Serpent-Twofish-AES", modeOuterCBC, []string{"aes", "twofish", "serpent"}},
	{"Twofish-Serpent", modeOuterCBC, []string{"serpent", "twofish"}},
	{"CAST5", modeOuterCBC, []string{"cast5"}},
	{"Triple DES", modeOuterCBC, []string{"3des"}},
	{"Blowfish", modeInnerCBC, []string{"blowfish"}},
	{"AES-Blowfish", modeInnerCBC, []string{"blowfish", "aes"}},
	{"AES-Blowfish-Serpent", modeInnerCBC, []string{"serpent", "blowfish", "aes"}},
}

// Mode is "LRW" or "CBC", as TrueCrypt's documentation names them.
func (a *legacyAlg) Mode() string {
	if a.mode == modeLRW {
		return "LRW"
	}
	return "CBC"
}

// fullName is the name LegacyAlgorithms gives: the mode, then TrueCrypt's
// name of the cipher or cascade.
func (a *legacyAlg) fullName() string { return a.Mode() + " " + a.name }

// LegacyAlgorithms returns the names of the legacy header encryptions
// Unlock recognises ("LRW AES", "CBC AES-Blowfish-Serpent", ...), as
// SealLegacy takes them.
func LegacyAlgorithms() []string {
	var n []string
	for i := range legacyAlgs {
		n = append(n, legacyAlgs[i].fullName())
	}
	return n
}

func lookupLegacy(name string) (*legacyAlg, bool) {
	for i := range legacyAlgs {
		if strings.EqualFold(legacyAlgs[i].fullName(), name) {
			return &legacyAlgs[i], true
		}
	}
	return nil, false
}

// legacyKeySizes are the key sizes TrueCrypt used for each cipher.
var legacyKeySizes = map[string]int{"aes": 32, "serpent": 32, "twofish": 32, "blowfish": 56, "cast5": 16, "3des": 24}

// legacyBlock is a block cipher of a legacy algorithm under one key, and the
// memory to wipe once it is no longer needed.
type legacyBlock struct {
	gocipher.Block
	wipe func()
}

// blockCache keys the ciphers of the legacy algorithms from one header key,
// each (cipher, key offset) once: the 21 algorithms share 14 of them, and
// a key schedule (Twofish's, Blowfish's, Serpent's in locked memory) costs
// more than decrypting 448 bytes. Serpent's round keys are in locked memory
// (state); Twofish's, Blowfish's and CAST5's in structs on the heap that
// wipe clears; crypto/aes and crypto/des keep theirs on the heap, unwiped
// (SECURITY.md, "Key material in memory").
type blockCache struct {
	hk     []byte
	blocks map[blockKey]legacyBlock
	state  *memguard.LockedBuffer // Serpent's round keys, maxSerpents of them
	used   int                    // Serpent states handed out
}

type blockKey struct {
	name string
	off  int
}

// maxSerpents is how many Serpent keys the legacy algorithms take from one
// header key: at offsets 32, 64 and 96.
const maxSerpents = 3

func newBlockCache(hk []byte) *blockCache {
	return &blockCache{hk: hk, blocks: map[blockKey]legacyBlock{}}
}

// get returns the named cipher under the key at off in the header key.
func (c *blockCache) get(name string, off int) (gocipher.Block, error) {
	k := blockKey{name, off}
	if b, ok := c.blocks[k]; ok {
		return b, nil
	}
	key := c.hk[off : off+legacyKeySizes[name]]
	var b legacyBlock
	switch name {
	case "aes":
		blk, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blk, func() {}}
	case "3des":
		blk, err := des.NewTripleDESCipher(key)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blk, func() {}}
	case "serpent":
		if c.state == nil {
			c.state = memguard.NewBuffer(maxSerpents * serpent.StateSize)
		}
		if c.used == maxSerpents {
			return nil, fmt.Errorf("tcrypt: more than %d Serpent keys", maxSerpents)
		}
		state := c.state.Bytes()[c.used*serpent.StateSize : (c.used+1)*serpent.StateSize]
		c.used++
		blk, err := serpent.New(key, state)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blk, func() {}}
	case "twofish":
		blk, err := twofish.NewCipher(key)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blk, func() { *blk = twofish.Cipher{} }}
	case "cast5":
		blk, err := cast5.NewCipher(key)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blk, func() { *blk = cast5.Cipher{} }}
	case "blowfish":
		blk, err := blowfish.NewCipher(key)
		if err != nil {
			return nil, err
		}
		b = legacyBlock{blowfishLE{blk}, func() { *blk = blowfish.Cipher{} }}
	default:
		return nil, fmt.Errorf("tcrypt: unknown legacy cipher %q", name)
	}
	c.blocks[k] = b
	return b, nil
}

// wipe clears every key schedule it can.
func (c *blockCache) wipe() {
	for _, b := range c.blocks {
		b.wipe()
	}
	if c.state != nil {
		c.state.Destroy()
	}
}

// blowfishLE is Blowfish as TrueCrypt ran it: each 32-bit half of a block
// read little-endian, where the standard (and x/crypto) reads it big-endian.
type blowfishLE struct{ b *blowfish.Cipher }

func (c blowfishLE) BlockSize() int { return blowfish.BlockSize }

func (c blowfishLE) Encrypt(dst, src []byte) {
	var t [8]byte
	swap32x2(&t, src)
	c.b.Encrypt(t[:], t[:])
	swap32x2((*[8]byte)(dst), t[:])
	clear(t[:])
}

func (c blowfishLE) Decrypt(dst, src []byte) {
	var t [8]byte
	swap32x2(&t, src)
	c.b.Decrypt(t[:], t[:])
	swap32x2((*[8]byte)(dst), t[:])
	clear(t[:])
}

func swap32x2(dst *[8]byte, src []byte) {
	binary.LittleEndian.PutUint32(dst[0:], binary.BigEndian.Uint32(src[0:]))
	binary.LittleEndian.PutUint32(dst[4:], binary.BigEndian.Uint32(src[4:]))
}

// chain is a cascade as one block cipher: encrypting applies its ciphers in
// order, decrypting in reverse.
type chain []gocipher.Block

func (c chain) BlockSize() int { return c[0].BlockSize() }

func (c chain) Encrypt(dst, src []byte) {
	copy(dst, src[:c.BlockSize()])
	for _, b := range c {
		b.Encrypt(dst, dst)
	}
}

func (c chain) Decrypt(dst, src []byte) {
	copy(dst, src[:c.BlockSize()])
	for i := len(c) - 1; i >= 0; i-- {
		c[i].Decrypt(dst, dst)
	}
}

// crypt encrypts or decrypts buf (EncryptedSize bytes), in place, with the
// ciphers keyed from the header key of keys (HeaderKeySize bytes).
func (a *legacyAlg) crypt(keys *blockCache, buf []byte, encrypt bool) error {
	hk := keys.hk
	blocks := make(chain, 0, len(a.ciphers))
	off := legacyKeysOffset
	for _, name := range a.ciphers {
		b, err := keys.get(name, off)
		if err != nil {
			return err
		}
		blocks = append(blocks, b)
		off += legacyKeySizes[name]
	}
	whitening := hk[whiteningOffset : whiteningOffset+whiteningSize]
	switch a.mode {
	case modeLRW:
		var k2 [16]byte
		copy(k2[:], hk[:lrwTweakKeySize])
		defer clear(k2[:])
		var first [16]byte
		first[15] = legacyFirstLRWIdx
		if encrypt {
			for _, b := range blocks {
				lrwCrypt(b, &k2, first, buf, buf, true)
			}
		} else {
			for i := len(blocks) - 1; i >= 0; i-- {
				lrwCrypt(blocks[i], &k2, first, buf, buf, false)
			}
		}
	case modeOuterCBC:
		if encrypt {
			cbcCrypt(blocks, hk, buf, true)
			whiten(buf, whitening)
		} else {
			whiten(buf, whitening)
			cbcCrypt(blocks, hk, buf, false)
		}
	case modeInnerCBC:
		if encrypt {
			for i := range blocks {
				cbcCrypt(blocks[i:i+1], hk, buf, true)
				whiten(buf, whitening)
			}
		} else {
			for i := len(blocks) - 1; i >= 0; i-- {
				whiten(buf, whitening)
				cbcCrypt(blocks[i:i+1], hk, buf, false)
			}
		}
	}
	return nil
}

// whiten XORs buf with the 8 whitening bytes, repeated.
func whiten(buf, w []byte) {
	for i := range buf {
		buf[i] ^= w[i%whiteningSize]
	}
}

// cbcCrypt runs CBC over buf in place with the cascade c, its IV the first
// block-size bytes of the header key.
func cbcCrypt(c chain, hk, buf []byte, encrypt bool) {
	bs := c.BlockSize()
	var iv, next [16]byte
	defer clear(iv[:])
	defer clear(next[:])
	copy(iv[:bs], hk[:bs])
	for off := 0; off < len(buf); off += bs {
		blk := buf[off : off+bs]
		if encrypt {
			subtle.XORBytes(blk, blk, iv[:bs])
			c.Encrypt(blk, blk)
			copy(iv[:bs], blk)
		} else {
			copy(next[:bs], blk)
			c.Decrypt(blk, blk)
			subtle.XORBytes(blk, blk, iv[:bs])
			copy(iv[:bs], next[:bs])
		}
	}
}

// LegacyError is a header of TrueCrypt 4.3a or older that the password
// opens: cryptvol recognises it and refuses the volume (LRW and CBC modes
// are not opened).
type LegacyError struct {
	Location Location
	KDF      KDF
	// Mode is "LRW" or "CBC"; Algorithm TrueCrypt's name of the cipher or
	// cascade ("AES", "AES-Blowfish-Serpent").
	Mode, Algorithm string
	// Version is the header version (TrueCrypt 4.1 to 4.3a wrote 2).
	Version uint16
}

func (e *LegacyError) Error() string {
	era := "TrueCrypt 4.0 or older"
	if e.Mode == "LRW" {
		era = "TrueCrypt 4.1 to 4.3a"
	}
	return fmt.Sprintf("the %s (%s): a volume of %s in %s mode (%s, header version %d): cryptvol does not open TrueCrypt's LRW and CBC volumes",
		e.Location, e.KDF, era, e.Mode, e.Algorithm, e.Version)
}

// legacyMatches reports whether plain (the 448 decrypted bytes) is a
// TrueCrypt header: the magic and the key area's CRC-32, as cryptsetup
// checks one (the header's own CRC came with version 4). A wrong key passes
// with a chance of 2^-64.
func legacyMatches(plain []byte) bool {
	return string(plain[offMagic:offMagic+4]) == MagicTrueCrypt &&
		crc32.ChecksumIEEE(plain[offKeys:]) == binary.BigEndian.Uint32(plain[offKeysCRC:])
}

// tryLegacy derives the header key of a legacy attempt and decrypts the
// header with every legacy algorithm: a header found is a *LegacyError.
func tryLegacy(ctx context.Context, raw, password []byte, a Attempt) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hk, err := a.KDF.Derive(ctx, password, raw[:SaltSize])
	if err != nil {
		return err
	}
	defer hk.Destroy()
	plain := memguard.NewBuffer(EncryptedSize)
	defer plain.Destroy()
	keys := newBlockCache(hk.Bytes())
	defer keys.wipe()
	for i := range legacyAlgs {
		alg := &legacyAlgs[i]
		copy(plain.Bytes(), raw[SaltSize:])
		if err := alg.crypt(keys, plain.Bytes(), false); err != nil {
			return err
		}
		if legacyMatches(plain.Bytes()) {
			return &LegacyError{Location: a.Location, KDF: a.KDF, Mode: alg.Mode(), Algorithm: alg.name,
				Version: binary.BigEndian.Uint16(plain.Bytes()[offVersion:])}
		}
	}
	return errNotThis
}

// legacyPRFs are TrueCrypt 4's PRFs with its iteration counts, in the
// order they are tried: RIPEMD-160 was its default. (TrueCrypt 5 replaced
// SHA-1 with SHA-512.)
var legacyPRFs = []struct {
	name, hash string
	iterations uint32
}{
	{PRFRIPEMD160, "ripemd160", 2000},
	{PRFSHA1, "sha1", 2000},
	{PRFWhirlpool, "whirlpool", 1000},
}

// PRFSHA1 is HMAC-SHA-1, which only TrueCrypt 4 and older used: it names
// legacy attempts, and --prf does not take it.
const PRFSHA1 = "sha1"

// legacyPlan returns the legacy attempts of an unlock: TrueCrypt 4's PRFs
// (only opts.PRF if it is one of them) at the places TrueCrypt 4 kept its
// headers, the volume's at 0 and a hidden volume's 1536 bytes before the
// end. None with a PIM, system encryption or backup headers, which came
// later.
func legacyPlan(size int64, opts Options) []Attempt {
	if opts.PIM != 0 || opts.System || opts.Backup {
		return nil
	}
	var locs []Location
	for _, l := range []Location{{Kind: Normal, Offset: 0}, {Kind: Hidden, Legacy: true, Offset: size - hiddenOffsetV3}} {
		if l.Kind == Hidden && l.Offset < HeaderSize || l.Offset+HeaderSize > size {
			continue
		}
		if opts.Kinds == nil || containsKind(opts.Kinds, l.Kind) {
			locs = append(locs, l)
		}
	}
	only := ""
	if opts.PRF != "" {
		p, ok := lookupPRF(opts.PRF)
		if !ok {
			return nil
		}
		only = p.name
	}
	var plan []Attempt
	for _, p := range legacyPRFs {
		if only != "" && p.name != only {
			continue
		}
		for _, l := range locs {
			plan = append(plan, Attempt{Location: l, KDF: KDF{PRF: p.name, Iterations: p.iterations, TrueCrypt: true}, Legacy: true})
		}
	}
	return plan
}

// LegacyKDFs returns the key derivations of TrueCrypt 4 and older, as
// SealLegacy takes them.
func LegacyKDFs() []KDF {
	var out []KDF
	for _, p := range legacyPRFs {
		out = append(out, KDF{PRF: p.name, Iterations: p.iterations, TrueCrypt: true})
	}
	return out
}

// SealLegacy returns the 512 bytes of a TrueCrypt 4 (or older) volume
// header, for tests and test-vector generators: cryptvol never writes one.
// The header has the given version (2 for LRW, 1 before), hidden volume
// size and master key area keys (KeyAreaSize bytes), encrypted with the
// named algorithm (LegacyAlgorithms) under the key k (LegacyKDFs) derives
// from password and salt.
func SealLegacy(ctx context.Context, version uint16, hiddenSize uint64, keys, password, salt []byte, k KDF, algorithm string) ([]byte, error) {
	alg, ok := lookupLegacy(algorithm)
	if !ok {
		return nil, fmt.Errorf("unknown legacy algorithm %q (known: %s)", algorithm, strings.Join(LegacyAlgorithms(), ", "))
	}
	if len(salt) != SaltSize || len(keys) != KeyAreaSize {
		return nil, fmt.Errorf("salt of %d and key area of %d bytes, want %d and %d", len(salt), len(keys), SaltSize, KeyAreaSize)
	}
	hk, err := k.Derive(ctx, password, salt)
	if err != nil {
		return nil, err
	}
	defer hk.Destroy()
	return sealLegacy(alg, version, hiddenSize, keys, salt, hk.Bytes())
}

// sealLegacy is SealLegacy with the header key hk derived.
func sealLegacy(alg *legacyAlg, version uint16, hiddenSize uint64, keys, salt, hk []byte) ([]byte, error) {
	plain := memguard.NewBuffer(EncryptedSize)
	defer plain.Destroy()
	p := plain.Bytes()
	be := binary.BigEndian
	copy(p[offMagic:], MagicTrueCrypt)
	be.PutUint16(p[offVersion:], version)
	be.PutUint16(p[offMinProgram:], 0x0410)
	be.PutUint64(p[offHiddenSize:], hiddenSize)
	copy(p[offKeys:], keys)
	be.PutUint32(p[offKeysCRC:], crc32.ChecksumIEEE(p[offKeys:]))
	out := make([]byte, HeaderSize)
	copy(out, salt)
	copy(out[SaltSize:], p)
	ciphers := newBlockCache(hk)
	defer ciphers.wipe()
	if err := alg.crypt(ciphers, out[SaltSize:], true); err != nil {
		return nil, err
	}
	return out, nil
}
