package tcrypt

import (
	"bytes"
	"context"
	stdpbkdf2 "crypto/pbkdf2"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/cryptvol/cryptvol/kdf"
)

func kdfList(ks []KDF) string {
	var s []string
	for _, k := range ks {
		x := fmt.Sprintf("%s/%d", k.PRF, k.Iterations)
		if k.MemoryKiB != 0 {
			x += fmt.Sprintf("/%dK", k.MemoryKiB)
		}
		if k.TrueCrypt {
			x = "tc:" + x
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

// TestKDFs holds the iteration counts to VeraCrypt's get_pkcs5_iteration_count
// (1.26) and TrueCrypt 7's, as cryptsetup's tcrypt.c table repeats them.
func TestKDFs(t *testing.T) {
	cases := []struct {
		f      Format
		prf    string
		pim    int
		system bool
		want   string
	}{
		{VeraCrypt, "", 0, false, "tc:sha512/1000 tc:whirlpool/1000 tc:ripemd160/2000 sha512/500000 sha256/500000 argon2id/6/425984K whirlpool/500000 blake2s/500000 streebog/500000"},
		{VeraCrypt, "", 0, true, "tc:ripemd160/1000 sha512/500000 sha256/200000 argon2id/6/425984K whirlpool/500000 blake2s/200000 streebog/200000"},
		{VeraCrypt, "", 1234, false, "sha512/1249000 sha256/1249000 whirlpool/1249000 blake2s/1249000 streebog/1249000"},
		{VeraCrypt, "", 33, false, "sha512/48000 sha256/48000 argon2id/15/1048576K whirlpool/48000 blake2s/48000 streebog/48000"},
		{VeraCrypt, "", 5, true, "sha512/20000 sha256/10240 argon2id/4/196608K whirlpool/20000 blake2s/10240 streebog/10240"},
		{VeraCrypt, "sha512", 0, false, "tc:sha512/1000 sha512/500000"},
		{VeraCrypt, "HMAC-SHA-256", 0, false, "sha256/500000"},
		{VeraCrypt, "ripemd160", 0, false, "tc:ripemd160/2000 ripemd160/655331"},
		{VeraCrypt, "ripemd160", 0, true, "tc:ripemd160/1000 ripemd160/327661"},
		{VeraCrypt, "ripemd160", 10, true, "ripemd160/20480"},
		{VeraCrypt, "stribog512", 0, false, "streebog/500000"},
		{VeraCrypt, "argon2id", 0, false, "argon2id/6/425984K"},
		{VeraCrypt, "argon2id", 1, false, "argon2id/3/65536K"},
		{VeraCrypt, "argon2id", 31, false, "argon2id/13/1048576K"},
		{VeraCrypt, "argon2id", 32, false, "argon2id/14/1048576K"},
		{TrueCrypt, "", 0, false, "tc:sha512/1000 tc:whirlpool/1000 tc:ripemd160/2000"},
		{TrueCrypt, "", 0, true, "tc:ripemd160/1000"},
		{TrueCrypt, "whirlpool", 0, false, "tc:whirlpool/1000"},
	}
	for _, c := range cases {
		ks, err := KDFs(c.f, c.prf, c.pim, c.system)
		if err != nil {
			t.Errorf("%v %q pim %d system %v: %v", c.f, c.prf, c.pim, c.system, err)
			continue
		}
		if got := kdfList(ks); got != c.want {
			t.Errorf("%v %q pim %d system %v:\n got %s\nwant %s", c.f, c.prf, c.pim, c.system, got, c.want)
		}
	}
	// A PIM over Argon2id's cap leaves it out, or is refused when it was
	// asked for by name.
	ks, err := KDFs(VeraCrypt, "", MaxArgon2idPIM+1, false)
	if err != nil || strings.Contains(kdfList(ks), "argon2id") {
		t.Errorf("PIM %d: %v, %s", MaxArgon2idPIM+1, err, kdfList(ks))
	}
	for _, c := range []struct {
		f      Format
		prf    string
		pim    int
		system bool
	}{
		{VeraCrypt, "md5", 0, false},
		{VeraCrypt, "", -1, false},
		{VeraCrypt, "", MaxPIM + 1, false},
		{VeraCrypt, "", MaxSystemPIM + 1, true},
		{VeraCrypt, "argon2id", MaxArgon2idPIM + 1, false},
		{TrueCrypt, "", 5, false},
		{TrueCrypt, "sha256", 0, false},
		{TrueCrypt, "sha512", 0, true},
	} {
		if ks, err := KDFs(c.f, c.prf, c.pim, c.system); err == nil {
			t.Errorf("%v %q pim %d system %v: accepted: %s", c.f, c.prf, c.pim, c.system, kdfList(ks))
		}
	}
}

// TestDeriveMatchesPBKDF2 holds the header key of every PBKDF2 PRF (package
// kdf's PBKDF2, checked there against the published vectors) to
// crypto/pbkdf2 over the same hash, at the header key's length.
func TestDeriveMatchesPBKDF2(t *testing.T) {
	salt := []byte("64 bytes of salt, or fewer: any length does")
	for _, p := range prfs {
		if p.hash == "" {
			continue
		}
		h, _ := kdf.Hash(p.hash)
		for _, pw := range []string{"", "aaaaaaaaaaaa", strings.Repeat("long password ", 10)} {
			want, err := stdpbkdf2.Key(h, pw, salt, 5000, HeaderKeySize)
			if err != nil {
				t.Fatal(err)
			}
			got, err := KDF{PRF: p.name, Iterations: 5000}.Derive(context.Background(), []byte(pw), salt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s %q: differs from crypto/pbkdf2", p.name, pw)
			}
			got.Destroy()
		}
	}
}

// TestDeriveCancel: a cancelled context stops a PBKDF2 derivation within
// checkEvery iterations, long before its end.
func TestDeriveCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := KDF{PRF: PRFStreebog, Iterations: 1 << 27}.Derive(ctx, []byte("p"), make([]byte, SaltSize))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the derivation did not stop")
	}
}

func TestArgon2Derive(t *testing.T) {
	// The smallest VeraCrypt Argon2id setting (PIM 1): 64 MiB, 3 passes.
	if testing.Short() {
		t.Skip("derives 64 MiB Argon2id")
	}
	ks, _ := KDFs(VeraCrypt, "argon2id", 1, false)
	salt := make([]byte, SaltSize)
	k1, err := ks[0].Derive(context.Background(), []byte("p"), salt)
	if err != nil {
		t.Fatal(err)
	}
	defer k1.Destroy()
	// kdf's Argon2id is checked against RFC 9106's vectors; here against
	// golang.org/x/crypto/argon2 at VeraCrypt's lane count and key length.
	if want := argon2.IDKey([]byte("p"), salt, 3, 64<<10, 1, HeaderKeySize); !bytes.Equal(k1.Bytes(), want) {
		t.Fatal("differs from golang.org/x/crypto/argon2")
	}
	if _, err := (KDF{PRF: PRFArgon2id, Iterations: 100, MemoryKiB: 1 << 20}).Derive(context.Background(), nil, salt); err == nil {
		t.Error("100 passes over 1 GiB accepted, over kdf.MaxWork")
	}
}
