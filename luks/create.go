package luks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/awnumar/memguard"

	"github.com/cryptvol/cryptvol/kdf"
)

// Defaults of `cryptsetup luksFormat --type luks2` in cryptsetup 2.6.
const (
	DefaultCipher     = "aes-xts-plain64"
	DefaultKeySize    = 64 // bytes (512 bits: AES-256 in XTS)
	DefaultSectorSize = 4096
	DefaultDataOffset = 16 << 20
	// defaultMetadataSize is one binary header and its 12 KiB JSON area.
	defaultMetadataSize = 0x4000
	// detachedKeyslotsSize is the keyslots area of a detached header
	// (cryptsetup's LUKS2_DEFAULT_HDR_SIZE of 16 MiB less the metadata).
	detachedKeyslotsSize = 16<<20 - 2*defaultMetadataSize
)

// CreateOptions are the parameters of a new LUKS2 volume; the zero value of
// each field is cryptsetup 2.6's default.
type CreateOptions struct {
	// Key is the first keyslot's derivation (Slot is ignored: it is 0).
	Key        NewKey
	Cipher     string // DefaultCipher
	KeySize    int    // DefaultKeySize
	SectorSize int    // DefaultSectorSize
	// Detached makes a header for a separate header file: the data starts at
	// offset 0 of the data device and DataOffset must be 0.
	Detached   bool
	DataOffset uint64 // DefaultDataOffset unless Detached
	UUID       string // a new random UUID
	Label      string
	// DigestIterations is the PBKDF2-SHA256 iteration count of the volume key
	// digest; 0 calibrates it to 125 ms, as cryptsetup does.
	DigestIterations uint32
	// VolumeKey is the volume key to use (tests, conversions); nil makes a
	// random one.
	VolumeKey *memguard.LockedBuffer
}

// Create writes a new LUKS2 header with one keyslot holding a new volume key
// under secret to dev, a volume (or header file when Detached) of size bytes,
// and returns the header and the volume key (in locked memory owned by the
// caller). It writes the whole header area — metadata, and the keyslots area
// filled with random bytes — and nothing of the data area.
func Create(ctx context.Context, dev Device, size int64, secret []byte, opts CreateOptions) (*Header, *memguard.LockedBuffer, error) {
	o := opts
	if o.Cipher == "" {
		o.Cipher = DefaultCipher
	}
	if o.KeySize == 0 {
		o.KeySize = DefaultKeySize
	}
	if o.SectorSize == 0 {
		o.SectorSize = DefaultSectorSize
	}
	if o.DataOffset == 0 && !o.Detached {
		o.DataOffset = DefaultDataOffset
	}
	if err := checkCipher("cipher", o.Cipher, o.KeySize); err != nil {
		return nil, nil, err
	}
	switch o.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return nil, nil, fmt.Errorf("sector size %d is not 512, 1024, 2048 or 4096", o.SectorSize)
	}
	md := uint64(defaultMetadataSize)
	keyslots := uint64(detachedKeyslotsSize)
	switch {
	case o.Detached && o.DataOffset != 0:
		return nil, nil, fmt.Errorf("a detached header has its data at offset 0, not %d", o.DataOffset)
	case !o.Detached:
		if o.DataOffset%uint64(o.SectorSize) != 0 || o.DataOffset < 2*md+1<<20 {
			return nil, nil, fmt.Errorf("data offset %d is not a multiple of the sector size of at least %d", o.DataOffset, 2*md+1<<20)
		}
		keyslots = min(o.DataOffset-2*md, luks2MaxKeyslotsSize) / 4096 * 4096
		if size < 0 || uint64(size) < o.DataOffset+uint64(o.SectorSize) {
			return nil, nil, fmt.Errorf("the device is %d bytes, a LUKS2 volume with data at %d needs at least %d", size, o.DataOffset, o.DataOffset+uint64(o.SectorSize))
		}
	}
	if size < 0 || uint64(size) < 2*md+keyslots {
		return nil, nil, fmt.Errorf("the device is %d bytes, the LUKS2 header needs %d", size, 2*md+keyslots)
	}
	uuid := o.UUID
	if uuid == "" {
		var err error
		if uuid, err = newUUID(); err != nil {
			return nil, nil, err
		}
	}
	if len(uuid) >= 40 || len(o.Label) >= luks2LabelSize {
		return nil, nil, fmt.Errorf("uuid %q or label %q is too long", uuid, o.Label)
	}
	digestIter := o.DigestIterations
	if digestIter == 0 {
		p, err := kdf.CalibratePBKDF2("sha256", 125*time.Millisecond, o.KeySize)
		if err != nil {
			return nil, nil, err
		}
		digestIter = p.Iterations
	}

	vk := o.VolumeKey
	if vk == nil {
		vk = memguard.NewBuffer(o.KeySize)
		if _, err := rand.Read(vk.Bytes()); err != nil {
			vk.Destroy()
			return nil, nil, err
		}
	} else {
		vk = memguard.NewBufferFromBytes(append([]byte(nil), vk.Bytes()...))
	}
	h, err := create(ctx, dev, size, secret, o, vk, md, keyslots, uuid, digestIter)
	if err != nil {
		vk.Destroy()
		return nil, nil, err
	}
	return h, vk, nil
}

func create(ctx context.Context, dev Device, size int64, secret []byte, o CreateOptions, vk *memguard.LockedBuffer, md, keyslots uint64, uuid string, digestIter uint32) (*Header, error) {
	spec, kdfJSON, err := newKeyslotKDF(o.Key)
	if err != nil {
		return nil, err
	}
	// The keyslots area starts out random, like cryptsetup's wipe.
	if err := wipeArea(dev, 2*md, keyslots); err != nil {
		return nil, err
	}
	afHash := "sha256"
	if spec.typ == "pbkdf2" {
		afHash = spec.hash
	}
	length := uint64(afSize(o.KeySize)+4095) / 4096 * 4096
	salt, err := randomBytes(luks2SaltSize)
	if err != nil {
		return nil, err
	}
	material, err := sealedMaterial(ctx, vk.Bytes(), secret, spec, salt, o.KeySize, o.Cipher, afHash)
	if err != nil {
		return nil, err
	}
	defer material.Destroy()
	if err := writeSync(dev, material.Bytes(), 2*md); err != nil {
		return nil, fmt.Errorf("writing key material: %w", err)
	}
	digestSalt, err := randomBytes(luks2SaltSize)
	if err != nil {
		return nil, err
	}
	digest, err := kdf.PBKDF2{Hash: "sha256", Iterations: digestIter}.Derive(ctx, vk.Bytes(), digestSalt, 32)
	if err != nil {
		return nil, err
	}
	defer digest.Destroy()
	b64 := base64.StdEncoding.EncodeToString
	kdfJSON.set("salt", jStr(b64(salt)))
	tree := jObj(
		jm("keyslots", jObj(jm("0", jObj(
			jm("type", jStr("luks2")),
			jm("key_size", jInt(int64(o.KeySize))),
			jm("af", jObj(jm("type", jStr("luks1")), jm("stripes", jInt(afStripes)), jm("hash", jStr(afHash)))),
			jm("area", jObj(jm("type", jStr("raw")), jm("offset", jUint(2*md)), jm("size", jUint(length)),
				jm("encryption", jStr(o.Cipher)), jm("key_size", jInt(int64(o.KeySize))))),
			jm("kdf", kdfJSON),
		)))),
		jm("tokens", jObj()),
		jm("segments", jObj(jm("0", jObj(
			jm("type", jStr("crypt")),
			jm("offset", jUint(o.DataOffset)),
			jm("size", jStr("dynamic")),
			jm("iv_tweak", jStr("0")),
			jm("encryption", jStr(o.Cipher)),
			jm("sector_size", jInt(int64(o.SectorSize))),
		)))),
		jm("digests", jObj(jm("0", jObj(
			jm("type", jStr("pbkdf2")),
			jm("keyslots", jArr(jStr("0"))),
			jm("segments", jArr(jStr("0"))),
			jm("hash", jStr("sha256")),
			jm("iterations", jInt(int64(digestIter))),
			jm("salt", jStr(b64(digestSalt))),
			jm("digest", jStr(b64(digest.Bytes()))),
		)))),
		jm("config", jObj(
			jm("json_size", jUint(md-luks2BinSize)),
			jm("keyslots_size", jUint(keyslots)),
		)),
	)
	// Commit as an update of an empty header whose seqid is 0: both copies
	// are written with seqid 1, the primary first.
	blank := &luks2Copy{hdrSize: md, csumAlg: "sha256", uuid: uuid, label: o.Label, meta: &luks2Meta{}}
	h := &Header{version: 2, size: size, v2: &luks2State{primary: blank, secondary: &luks2Copy{}, cur: blank}}
	if err := h.commit2(dev, tree); err != nil {
		return nil, err
	}
	return Read(dev, size)
}

// newUUID returns a random (version 4) UUID in the lowercase form cryptsetup
// writes.
func newUUID() (string, error) {
	b, err := randomBytes(16)
	if err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

// SetDataSize sets the size of a LUKS2 data segment of fixed size to size
// bytes (a multiple of the sector size). A LUKS1 volume and a LUKS2 segment of
// dynamic size run to the end of the device: there is nothing to write, and it
// returns nil.
func (h *Header) SetDataSize(dev Device, size uint64) error {
	if err := h.Supported(); err != nil {
		return err
	}
	if h.v1 != nil {
		return nil
	}
	m := h.v2.meta()
	seg := m.segments[0]
	if seg.dynamic {
		return nil
	}
	if size == 0 || size%uint64(seg.sectorSize) != 0 || seg.offset+size < seg.offset {
		return fmt.Errorf("data size %d is not a positive multiple of the sector size %d", size, seg.sectorSize)
	}
	if err := h.v2.checkUnchanged(dev, h.size); err != nil {
		return err
	}
	tree := m.tree.clone()
	tree.get("segments").get(strconv.Itoa(seg.id)).set("size", jUint(size))
	return h.commit2(dev, tree)
}
