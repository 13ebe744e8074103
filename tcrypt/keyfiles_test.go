package tcrypt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readers(files ...[]byte) []io.Reader {
	var r []io.Reader
	for _, f := range files {
		r = append(r, bytes.NewReader(f))
	}
	return r
}

func TestPassword(t *testing.T) {
	a, b := bytes.Repeat([]byte{1, 2, 3}, 100), []byte("second keyfile")
	// Without keyfiles, the passphrase itself.
	p, err := Password(VeraCrypt, []byte("secret"), nil)
	if err != nil || string(p) != "secret" {
		t.Fatalf("%q, %v", p, err)
	}
	// With keyfiles: a 64-byte pool, the passphrase added into it; the
	// order of the keyfiles does not matter.
	ab, _ := Password(VeraCrypt, []byte("secret"), readers(a, b))
	ba, _ := Password(VeraCrypt, []byte("secret"), readers(b, a))
	if len(ab) != 64 || !bytes.Equal(ab, ba) {
		t.Fatalf("pool %d bytes, order matters: %v", len(ab), !bytes.Equal(ab, ba))
	}
	noPass, _ := Password(VeraCrypt, nil, readers(a, b))
	for i := range ab {
		want := noPass[i]
		if i < 6 {
			want += "secret"[i]
		}
		if ab[i] != want {
			t.Fatalf("byte %d: %d, want %d (pool + passphrase)", i, ab[i], want)
		}
	}
	// A passphrase longer than 64 bytes makes the pool 128 bytes.
	long := []byte(strings.Repeat("x", 72))
	p, _ = Password(VeraCrypt, long, readers(a))
	if len(p) != 128 {
		t.Errorf("pool of %d bytes with a 72-byte passphrase", len(p))
	}
	// One keyfile of one zero byte: the CRC register 0xffffffff updated
	// with it (table[0xff] ^ 0x00ffffff = 0x2dfd1072), before the final
	// inversion, its four bytes added at 0..3.
	p, _ = Password(VeraCrypt, nil, readers([]byte{0}))
	if !bytes.Equal(p[:4], []byte{0x2d, 0xfd, 0x10, 0x72}) || p[4] != 0 {
		t.Errorf("one zero byte: % x", p[:8])
	}
	// Only the first MiB counts.
	big := bytes.Repeat([]byte{7}, KeyfileReadLimit)
	p1, _ := Password(VeraCrypt, nil, readers(big))
	p2, _ := Password(VeraCrypt, nil, readers(append(big, 1, 2, 3)))
	if !bytes.Equal(p1, p2) {
		t.Error("bytes after the first MiB changed the pool")
	}
}

func TestPasswordTooLong(t *testing.T) {
	for _, c := range []struct {
		f   Format
		n   int
		bad bool
	}{{VeraCrypt, 128, false}, {VeraCrypt, 129, true}, {TrueCrypt, 64, false}, {TrueCrypt, 65, true}} {
		_, err := Password(c.f, bytes.Repeat([]byte{'a'}, c.n), nil)
		if bad := errors.Is(err, ErrPasswordTooLong); bad != c.bad {
			t.Errorf("%v, %d bytes: %v", c.f, c.n, err)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestPasswordReadError(t *testing.T) {
	if _, err := Password(VeraCrypt, nil, []io.Reader{failingReader{}}); err == nil || !strings.Contains(err.Error(), "keyfile 1") {
		t.Errorf("got %v", err)
	}
}
