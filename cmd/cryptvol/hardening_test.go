package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain /mnt/x":          "plain /mnt/x",
		"Grüße, 日本":             "Grüße, 日本",
		"\x1b]0;owned\x07":      `\x1b]0;owned\x07`,
		"a\nb\tc\rd":            `a\x0ab\x09c\x0dd`,
		"del\x7f":               `del\x7f`,
		"c1\u009b31m":           `c1\u009b31m`,
		"bad\xff\xfeutf8":       `bad\xff\xfeutf8`,
		"evil\u202egnp.exe":     `evil\u202egnp.exe`,
		"zero\u200bwidth\ufeff": `zero\u200bwidth\ufeff`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
	var out, errOut bytes.Buffer
	u := &ui{stdout: &out, stderr: &errOut}
	u.printf("%s %d %v\n", "a\x1b[2Jb", 7, errors.New("e\x1bf"))
	u.warnf("%s", "w\x07")
	if out.String() != `a\x1b[2Jb 7 e\x1bf`+"\n" || errOut.String() != `cryptvol: warning: w\x07`+"\n" {
		t.Fatalf("printf/warnf did not escape: %q %q", out.String(), errOut.String())
	}
}

// TestExportCreatesOutputAfterPrompt plants a file at export's OUT while
// export waits for the passphrase (here, for someone to write it into a
// FIFO), as someone who may write OUT's directory could: without --force the
// export fails instead of writing the plaintext into the planted file; with
// --force the planted file (mode 0666) gets nothing and OUT becomes a new
// file of mode 0600. Before, the planted file received the plaintext and
// kept its mode.
func TestExportCreatesOutputAfterPrompt(t *testing.T) {
	dir := t.TempDir()
	vault := filepath.Join(dir, "v.cv")
	vol, err := container.Create(context.Background(), vault, container.Passphrase([]byte("pw")),
		&container.CreateOptions{Size: 1 << 20, KDF: kdf.Params{Memory: kdf.MinMemory, Iterations: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	vol.WriteAt(bytes.Repeat([]byte("PLAINTEXT"), 1000), 0)
	vol.Close()
	for _, force := range []bool{false, true} {
		out := filepath.Join(dir, "out.img")
		os.Remove(out)
		fifo := filepath.Join(dir, "pw.fifo")
		os.Remove(fifo)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"export", "v.cv", "out.img", "--passphrase-file", "pw.fifo"}
		if force {
			args = append(args, "--force")
		}
		c := cli(dir, args...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once export opened it
		if err != nil {
			t.Fatal(err)
		}
		planted, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(out, 0o666)
		w.WriteString("pw\n")
		w.Close()
		err = c.Wait()
		st, _ := planted.Stat()
		planted.Close()
		if st.Size() != 0 {
			t.Fatalf("force=%v: the planted file received %d bytes", force, st.Size())
		}
		now, serr := os.Stat(out)
		if !force {
			if err == nil || !strings.Contains(stderr.String(), "out.img: file already exists") {
				t.Fatalf("without --force: %v; %s", err, stderr.String())
			}
			if serr != nil || !os.SameFile(now, st) {
				t.Fatal("the planted file was replaced without --force")
			}
			continue
		}
		if err != nil {
			t.Fatalf("with --force: %v; %s", err, stderr.String())
		}
		if serr != nil || os.SameFile(now, st) || now.Mode().Perm() != 0o600 || now.Size() != 1<<20 {
			t.Fatalf("with --force OUT is %v (same file as the planted one: %v)", now.Mode(), os.SameFile(now, st))
		}
	}
}
