package tcrypt

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/internal/e2e"
)

// tcryptImages is the archive of VeraCrypt and TrueCrypt volumes made by those
// tools (../shared/interop/README.md); it stays outside the repository.
const tcryptImages = "../../shared/interop/tcrypt-images.tar.xz"

// image is one volume of the archive and how it opens, from the README.
type image struct {
	file      string
	format    Format
	password  string
	keyfiles  bool
	opts      Options // PRF (from the name), PIM, System
	kind      Kind
	algorithm string
	serial    uint32 // the FAT volume serial the data holds
}

const (
	outerSerial  = 0xDEADBABE
	hiddenSerial = 0xCAFEBABE
)

// interopImages lists every volume of the archive with every way it opens.
func interopImages() []image {
	const a, b, c = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccccccccccc"
	const pw72 = "aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffffffffffff"
	vc := func(file, password, prf, algorithm string) image {
		return image{file: file, format: VeraCrypt, password: password, opts: Options{PRF: prf}, algorithm: algorithm, serial: outerSerial}
	}
	tc := func(file, prf, algorithm string) image {
		return image{file: file, format: TrueCrypt, password: a, opts: Options{PRF: prf}, algorithm: algorithm, serial: outerSerial}
	}
	with := func(im image, f func(*image)) image { f(&im); return im }
	return []image{
		vc("vc_1-sha512-xts-aes", a, PRFSHA512, "AES"),
		vc("vc_1-sha256-xts-aes", a, PRFSHA256, "AES"),
		vc("vc_1-argon2id-xts-aes", a, PRFArgon2id, "AES"),
		vc("vc_1-whirlpool-xts-aes", a, PRFWhirlpool, "AES"),
		vc("vc_1-blake2s-xts-aes", a, PRFBLAKE2s, "AES"),
		vc("vc_1-sha512-xts-serpent-twofish-aes", a, PRFSHA512, "Serpent-Twofish-AES"),
		vc("vc_1-sha512-xts-camellia", a, PRFSHA512, "Camellia"),
		vc("vc_1-sha512-xts-kuznyechik", a, PRFSHA512, "Kuznyechik"),
		with(vc("vcpim_1_1234-sha256-xts-aes", c, PRFSHA256, "AES"), func(im *image) { im.opts.PIM = 1234 }),
		with(vc("vcpim_1_33-argon2id-xts-aes", c, PRFArgon2id, "AES"), func(im *image) { im.opts.PIM = 33 }),
		with(vc("vck_1-sha512-xts-aes", a, PRFSHA512, "AES"), func(im *image) { im.keyfiles = true }),
		with(vc("vck_1_nopw-sha512-xts-aes", "", PRFSHA512, "AES"), func(im *image) { im.keyfiles = true }),
		with(vc("vck_1_pw72-sha256-xts-aes", pw72, PRFSHA256, "AES"), func(im *image) { im.keyfiles = true }),
		vc("vc_1-sha512-xts-aes-hidden", a, PRFSHA512, "AES"),
		with(vc("vc_1-sha512-xts-aes-hidden", b, PRFSHA512, "AES"), func(im *image) { im.kind, im.serial = Hidden, hiddenSerial }),
		with(vc("sys_vc_1_mbr_part-sha256-xts-aes", a, PRFSHA256, "AES"), func(im *image) { im.kind, im.opts.System = System, true }),
		tc("tc_5-sha512-xts-aes", PRFSHA512, "AES"),
		tc("tc_4-sha512-xts-aes-hidden", PRFSHA512, "AES"),
		with(tc("tc_4-sha512-xts-aes-hidden", PRFSHA512, "AES"), func(im *image) { im.password, im.kind, im.serial = b, Hidden, hiddenSerial }),
		tc("tc_3-ripemd160-xts-serpent", PRFRIPEMD160, "Serpent"),
		tc("tc_4-sha512-xts-twofish-serpent", PRFSHA512, "Twofish-Serpent"),
		with(tc("tck_5-sha512-xts-aes", PRFSHA512, "AES"), func(im *image) { im.keyfiles = true }),
		// TrueCrypt 6 and 7 volumes open as VeraCrypt volumes too.
		with(tc("tc_5-sha512-xts-aes", PRFSHA512, "AES"), func(im *image) { im.format = VeraCrypt }),
		with(tc("tc_4-sha512-xts-aes-hidden", PRFSHA512, "AES"), func(im *image) { im.format, im.password, im.kind, im.serial = VeraCrypt, b, Hidden, hiddenSerial }),
	}
}

// unpackImages extracts the archive into a temporary directory, or skips.
func unpackImages(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(tcryptImages); err != nil {
		e2e.Skip(t, "the interop images are not beside the repository: "+err.Error())
	}
	e2e.Tools(t, "tar", "xz")
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xJf", tcryptImages, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	return dir
}

// TestInteropImages opens every volume of the archive with its PRF (named,
// to keep the test short: the full trial decryption is the e2e tests'), and
// checks where the header was, the algorithm, and the FAT volume serial at
// the start of the decrypted data (the README's DEAD-BABE or CAFE-BABE):
// the key pool, PIM, iteration counts, header layout and data offsets of
// real VeraCrypt and TrueCrypt volumes.
func TestInteropImages(t *testing.T) {
	if testing.Short() {
		t.Skip("derives keys with up to 1249000 PBKDF2 iterations and 1 GiB of Argon2id")
	}
	dir := unpackImages(t)
	for _, im := range interopImages() {
		name := im.file + "/" + im.format.String() + "/" + im.kind.String()
		t.Run(name, func(t *testing.T) {
			if im.opts.PIM > 0 {
				// 1249000 iterations of SHA-256, 15 passes over 1 GiB:
				// cmd/cryptvol's e2e test opens these.
				t.Skip("a PIM volume: opened by the e2e test (testdata/e2e/veracrypt_images.txtar)")
			}
			if raceEnabled && im.opts.PRF != PRFSHA512 && im.format != TrueCrypt {
				t.Skip("too slow under the race detector (tens of seconds each); runs without -race")
			}
			f, err := os.Open(filepath.Join(dir, im.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			var kfs []io.Reader
			if im.keyfiles {
				for _, k := range []string{"keyfile1", "keyfile2"} {
					kf, err := os.Open(filepath.Join(dir, k))
					if err != nil {
						t.Fatal(err)
					}
					defer kf.Close()
					kfs = append(kfs, kf)
				}
			}
			pw, err := Password(im.format, []byte(im.password), kfs)
			if err != nil {
				t.Fatal(err)
			}
			o := im.opts
			o.Format = im.format
			u, err := Unlock(context.Background(), f, st.Size(), pw, o)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if u.Location.Kind != im.kind || u.Algorithm != im.algorithm {
				t.Fatalf("opened the %s with %s, want the %s header with %s", u.Location, u.Algorithm, im.kind, im.algorithm)
			}
			want := MagicVeraCrypt
			if strings.HasPrefix(im.file, "tc") {
				want = MagicTrueCrypt
			}
			if u.Header.Magic != want {
				t.Errorf("magic %q, want %q", u.Header.Magic, want)
			}
			area, err := u.Header.Area(u.Location, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			spec, _ := cipher.VeraCryptSpec(u.Algorithm)
			s, err := cipher.NewSector(spec, u.MasterKey(), make([]byte, spec.StateSize()), UnitSize)
			if err != nil {
				t.Fatal(err)
			}
			boot := make([]byte, UnitSize)
			if _, err := f.ReadAt(boot, area.Offset); err != nil {
				t.Fatal(err)
			}
			s.Decrypt(boot, boot, area.IVOffset)
			if serial := binary.LittleEndian.Uint32(boot[0x27:]); serial != im.serial || boot[510] != 0x55 || boot[511] != 0xaa {
				t.Errorf("decrypted boot sector: serial %08X, signature % x; want %08X, 55 aa", serial, boot[510:], im.serial)
			}
		})
	}
}
