package tcrypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/cryptvol/cryptvol/kdf"
)

// lrwVector is one of testvectors/lrw/lrw-aes.json (see its README).
type lrwVector struct {
	Name, Key, TweakKey, Index, Plaintext, Ciphertext string
}

func (v *lrwVector) UnmarshalJSON(b []byte) error {
	var raw struct {
		Name       string `json:"name"`
		Key        string `json:"key"`
		TweakKey   string `json:"tweak_key"`
		Index      string `json:"index"`
		Plaintext  string `json:"plaintext"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*v = lrwVector{raw.Name, raw.Key, raw.TweakKey, raw.Index, raw.Plaintext, raw.Ciphertext}
	return nil
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLRWVectors holds LRW to the IEEE P1619 draft's LRW-AES vectors and
// the 512-byte one of the P1619 list, as Linux's testmgr.h carries them.
func TestLRWVectors(t *testing.T) {
	b, err := os.ReadFile("../testvectors/lrw/lrw-aes.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []lrwVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 8 {
		t.Fatalf("%d vectors, want 8", len(vs))
	}
	for _, v := range vs {
		blk, err := aes.NewCipher(unhex(t, v.Key))
		if err != nil {
			t.Fatal(err)
		}
		var k2, index [16]byte
		copy(k2[:], unhex(t, v.TweakKey))
		copy(index[:], unhex(t, v.Index))
		pt, ct := unhex(t, v.Plaintext), unhex(t, v.Ciphertext)
		got := make([]byte, len(pt))
		lrwCrypt(blk, &k2, index, got, pt, true)
		if !bytes.Equal(got, ct) {
			t.Errorf("%s: encrypt %x, want %x", v.Name, got, ct)
		}
		lrwCrypt(blk, &k2, index, got, got, false)
		if !bytes.Equal(got, pt) {
			t.Errorf("%s: decrypt in place %x, want %x", v.Name, got, pt)
		}
	}
}

// TestGFMul: 1 is the identity (the last byte's low bit), x^127 · x wraps
// to the reduction polynomial's low terms (0x87), and the product commutes.
func TestGFMul(t *testing.T) {
	a := [16]byte{0x25, 0x8e, 0x2a, 0x05, 0xe7, 0x3e, 0x9d, 0x03, 0xee, 0x5a, 0x83, 0x0c, 0xcc, 0x09, 0x4c, 0x87}
	one := [16]byte{15: 1}
	if gfMul(&a, &one) != a || gfMul(&one, &a) != a {
		t.Error("a·1 != a")
	}
	top, x := [16]byte{0: 0x80}, [16]byte{15: 2}
	if got := gfMul(&top, &x); got != [16]byte{15: 0x87} {
		t.Errorf("x^127·x = %x", got)
	}
	b := [16]byte{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3}
	if gfMul(&a, &b) != gfMul(&b, &a) {
		t.Error("not commutative")
	}
}

// legacyVolume is a file of size bytes holding a TrueCrypt 4 header sealed
// with algorithm and k at off.
func legacyVolume(t *testing.T, size, off int64, algorithm string, k KDF, password string) []byte {
	t.Helper()
	file := make([]byte, size)
	for i := range file {
		file[i] = byte(i*7 + i>>8)
	}
	raw, err := SealLegacy(context.Background(), 2, 0, testKeys(), []byte(password), bytes.Repeat([]byte{9}, SaltSize), k, algorithm)
	if err != nil {
		t.Fatal(err)
	}
	copy(file[off:], raw)
	return file
}

// TestLegacyRoundTrip seals a header with every legacy algorithm, and
// decrypts it with every one: only its own opens it, to the sealed bytes.
func TestLegacyRoundTrip(t *testing.T) {
	k := LegacyKDFs()[0]
	hk, err := k.Derive(context.Background(), []byte("pw"), bytes.Repeat([]byte{9}, SaltSize))
	if err != nil {
		t.Fatal(err)
	}
	defer hk.Destroy()
	keys := newBlockCache(hk.Bytes())
	defer keys.wipe()
	names := LegacyAlgorithms()
	if len(names) != 21 {
		t.Errorf("%d legacy algorithms, want 21", len(names))
	}
	for _, name := range names {
		alg, _ := lookupLegacy(name)
		raw, err := sealLegacy(alg, 2, 0, testKeys(), bytes.Repeat([]byte{9}, SaltSize), hk.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for i := range legacyAlgs {
			plain := bytes.Clone(raw[SaltSize:])
			if err := legacyAlgs[i].crypt(keys, plain, false); err != nil {
				t.Fatal(err)
			}
			own := legacyAlgs[i].fullName() == name
			if legacyMatches(plain) != own {
				t.Errorf("%s sealed, %s decrypts: matches %v", name, legacyAlgs[i].fullName(), !own)
			}
			if own && !bytes.Equal(plain[offKeys:], testKeys()) {
				t.Errorf("%s: key area not as sealed", name)
			}
		}
	}
	if _, err := SealLegacy(context.Background(), 2, 0, testKeys(), nil, make([]byte, SaltSize), k, "XTS AES"); err == nil {
		t.Error("XTS AES sealed as a legacy algorithm")
	}
}

// TestUnlockLegacy: a TrueCrypt 4 header is refused with a *LegacyError
// naming its mode and cipher, from every TrueCrypt 4 PRF, at the volume's
// place and at the hidden volume's; a wrong password is still ErrWrongPassword; and where TrueCrypt 4 never
// kept headers (a PIM, system encryption, the backup headers) none is
// looked for.
func TestUnlockLegacy(t *testing.T) {
	const size = 64 << 10
	// Each case names the PRF where it can (SHA-1 cannot be named), and
	// one session serves them all (every volume has the same salt at 0),
	// so that the unlocks derive little.
	s := kdf.NewSession(0)
	defer s.Close()
	ctx := kdf.NewContext(context.Background(), s)
	for i, c := range []struct {
		algorithm string
		kdf       int
		off       int64
		opts      Options
		mode      string
		kind      Kind
	}{
		{"LRW AES", 0, 0, Options{Format: TrueCrypt, PRF: PRFRIPEMD160}, "LRW", Normal},
		{"LRW Serpent-Twofish-AES", 1, 0, Options{Format: TrueCrypt}, "LRW", Normal},
		{"CBC AES-Blowfish-Serpent", 2, 0, Options{Format: TrueCrypt, PRF: PRFWhirlpool}, "CBC", Normal},
		{"CBC Triple DES", 2, size - hiddenOffsetV3, Options{Format: TrueCrypt, PRF: PRFWhirlpool}, "CBC", Hidden},
		{"LRW Twofish", 1, 0, Options{Format: TrueCrypt, Workers: 1, PRF: PRFWhirlpool}, "", 0},
	} {
		k := LegacyKDFs()[c.kdf]
		file := legacyVolume(t, size, c.off, c.algorithm, k, "old")
		_, err := Unlock(ctx, bytes.NewReader(file), size, []byte("old"), c.opts)
		var le *LegacyError
		if c.mode == "" {
			// --prf whirlpool does not try the SHA-1 the header was made with.
			if !errors.Is(err, ErrWrongPassword) {
				t.Errorf("%s with %s, %+v: %v", c.algorithm, k, c.opts, err)
			}
			continue
		}
		if !errors.As(err, &le) {
			t.Fatalf("%s with %s, %+v: %v", c.algorithm, k, c.opts, err)
		}
		if le.Mode != c.mode || le.Mode+" "+le.Algorithm != c.algorithm || le.KDF != k || le.Location.Kind != c.kind || le.Location.Offset != c.off || le.Version != 2 {
			t.Errorf("%s: %+v", c.algorithm, le)
		}
		if i == 0 {
			if _, err := Unlock(ctx, bytes.NewReader(file), size, []byte("wrong"), c.opts); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("%s, wrong password: %v", c.algorithm, err)
			}
		}
	}
	file := legacyVolume(t, size, 0, "LRW AES", LegacyKDFs()[0], "old")
	for _, o := range []Options{{Format: VeraCrypt, PIM: 1, PRF: PRFSHA512}, {Format: TrueCrypt, System: true, PRF: PRFRIPEMD160}, {Format: TrueCrypt, Backup: true, PRF: PRFRIPEMD160}} {
		if _, err := Unlock(ctx, bytes.NewReader(file), size, []byte("old"), o); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if _, err := Unlock(ctx, bytes.NewReader(file), size, []byte("old"), Options{Format: TrueCrypt, PRF: PRFRIPEMD160, Kinds: []Kind{Hidden}}); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("only the hidden header: %v", err)
	}
	// With --type veracrypt the same legacy attempts are planned (its
	// whole plan takes VeraCrypt's iteration counts: too slow to run here).
	plan, err := Plan(size, Options{Format: VeraCrypt})
	if err != nil {
		t.Fatal(err)
	}
	var legacy []Attempt
	for _, a := range plan {
		if a.Legacy {
			legacy = append(legacy, a)
		}
	}
	if len(legacy) != 6 || plan[len(plan)-1] != legacy[5] || legacy[1].Location != (Location{Kind: Hidden, Legacy: true, Offset: size - hiddenOffsetV3}) {
		t.Errorf("VeraCrypt's legacy attempts: %+v", legacy)
	}
	var le *LegacyError
	if err := tryLegacy(ctx, file[:HeaderSize], []byte("old"), legacy[0]); !errors.As(err, &le) || le.Algorithm != "AES" {
		t.Errorf("VeraCrypt's first legacy attempt: %v", err)
	}
}

// TestUnlockLegacySession: the legacy attempts go through the unlock's
// kdf.Session like the others, and derive only what the XTS attempts did
// not: with --type truecrypt, RIPEMD-160 and Whirlpool were derived at the
// volume's header already, so SHA-1 there is all they add (only the normal
// header is tried, to keep the test short).
func TestUnlockLegacySession(t *testing.T) {
	const size = 64 << 10
	file := legacyVolume(t, size, 0, "CBC AES", LegacyKDFs()[1], "old")
	opts := Options{Format: TrueCrypt, Kinds: []Kind{Normal}}
	plan, err := Plan(size, opts)
	if err != nil {
		t.Fatal(err)
	}
	xts := 0
	for _, a := range plan {
		if !a.Legacy {
			xts++
		}
	}
	s := kdf.NewSession(0)
	defer s.Close()
	_, err = Unlock(kdf.NewContext(context.Background(), s), bytes.NewReader(file), size, []byte("wrong"), opts)
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if s.Derivations() != xts+1 || len(plan) != xts+3 {
		t.Errorf("%d derivations, want the %d XTS ones and 1 SHA-1 (a plan of %d)", s.Derivations(), xts, len(plan))
	}
	_, err = Unlock(kdf.NewContext(context.Background(), s), bytes.NewReader(file), size, []byte("old"), opts)
	var le *LegacyError
	if !errors.As(err, &le) || le.Algorithm != "AES" || le.Mode != "CBC" {
		t.Errorf("right password: %v", err)
	}
	small := kdf.NewSession(LegacyKDFs()[0].Work())
	defer small.Close()
	if _, err := Unlock(kdf.NewContext(context.Background(), small), bytes.NewReader(file), size, []byte("old"), opts); !errors.Is(err, kdf.ErrBudget) {
		t.Errorf("a budget of one derivation: %v", err)
	}
}
