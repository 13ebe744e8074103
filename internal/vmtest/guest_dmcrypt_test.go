package vmtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGuestDMCryptRecipe runs docs/FORMAT.md §6's recovery recipe exactly as
// the document prints it (its three sh blocks: geometry and key, then
// cryptsetup or dmsetup), typing the passphrase at the terminal prompt, and
// compares dm-crypt's plaintext with cryptvol's byte for byte, for both
// sector sizes. Without iv_large_sectors, 4096-byte sectors must decrypt to
// garbage: that is what the option is for.
func TestGuestDMCryptRecipe(t *testing.T) {
	if !InGuest() {
		t.Skip("guest test: runs in the kernel lab (TestLab, scripts/kernel-lab)")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "FORMAT.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := recipeBlocks(t, string(doc))
	for _, sector := range []int{512, 4096} {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			dir := t.TempDir()
			plain := make([]byte, 3<<20)
			rand.Read(plain)
			writeFile(t, filepath.Join(dir, "plain.img"), plain)
			writeFile(t, filepath.Join(dir, "pw"), []byte("recipe passphrase\n"))
			run(t, dir, "cryptvol", "create", "vault.cv", "--from", "plain.img", "--sector-size", fmt.Sprint(sector),
				"--kdf-memory", "8M", "--kdf-iterations", "1", "--kdf-threads", "1", "--passphrase-file", "pw")
			run(t, dir, "cryptvol", "export", "vault.cv", "export.img", "--passphrase-file", "pw")
			served, err := os.ReadFile(filepath.Join(dir, "export.img"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(served, plain) {
				t.Fatal("cryptvol export differs from the image the vault was made from")
			}
			for _, tc := range []struct {
				name, block string
			}{{"cryptsetup", blocks[1]}, {"dmsetup", blocks[2]}} {
				t.Run(tc.name, func(t *testing.T) {
					got := runRecipe(t, dir, blocks[0]+"\n"+tc.block, len(plain))
					if !bytes.Equal(got, plain) {
						t.Fatalf("dm-crypt's plaintext differs from cryptvol's at byte %d", firstDiff(got, plain))
					}
				})
			}
			if sector == 4096 {
				t.Run("without-iv_large_sectors", func(t *testing.T) {
					wrong := strings.Replace(blocks[2], " 2 sector_size:$S iv_large_sectors", " 1 sector_size:$S", 1)
					if wrong == blocks[2] {
						t.Fatal("the dmsetup table no longer has ` 2 sector_size:$S iv_large_sectors`")
					}
					got := runRecipe(t, dir, blocks[0]+"\n"+wrong, len(plain))
					if !bytes.Equal(got[:sector], plain[:sector]) || bytes.Equal(got[sector:2*sector], plain[sector:2*sector]) {
						t.Fatal("without iv_large_sectors, the first sector should decrypt and the second should not")
					}
				})
			}
		})
	}
}

// recipeBlocks returns the ```sh blocks of FORMAT.md §6: the geometry and
// key, the cryptsetup command and the dmsetup table.
func recipeBlocks(t *testing.T, doc string) []string {
	start := strings.Index(doc, "## §6 ")
	end := strings.Index(doc, "## §7 ")
	if start < 0 || end < start {
		t.Fatal("FORMAT.md has no §6")
	}
	var blocks []string
	rest := doc[start:end]
	for {
		i := strings.Index(rest, "```sh\n")
		if i < 0 {
			break
		}
		rest = rest[i+len("```sh\n"):]
		j := strings.Index(rest, "```")
		if j < 0 {
			t.Fatal("unterminated code block in FORMAT.md §6")
		}
		blocks = append(blocks, rest[:j])
		rest = rest[j+3:]
	}
	if len(blocks) != 3 || !strings.Contains(blocks[0], "--dump-master-key") || !strings.Contains(blocks[1], "cryptsetup open") || !strings.Contains(blocks[2], "dmsetup create") {
		t.Fatalf("FORMAT.md §6 should have 3 sh blocks (geometry and key, cryptsetup, dmsetup); found %d:\n%s", len(blocks), strings.Join(blocks, "\n---\n"))
	}
	return blocks
}

// runRecipe runs script with sh -e in dir, with a new terminal as its
// controlling terminal where it types the passphrase when asked, reads size
// bytes of /dev/mapper/recovered, and removes the mapping and the loop
// device the script made.
func runRecipe(t *testing.T, dir, script string, size int) []byte {
	t.Helper()
	script += "\necho \"${LOOP:-}\" > loop.name\n"
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	var out bytes.Buffer
	cmd := exec.Command("sh", "-e", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	go answerPrompt(master, "Enter passphrase", "recipe passphrase\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		err = <-done
	}
	t.Cleanup(func() {
		exec.Command("dmsetup", "remove", "recovered").Run()
		if b, err := os.ReadFile(filepath.Join(dir, "loop.name")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			exec.Command("losetup", "-d", string(bytes.TrimSpace(b))).Run()
		}
	})
	if err != nil {
		t.Fatalf("the recipe failed: %v\n%s", err, out.String())
	}
	t.Logf("the recipe ran:\n%s", out.String())
	f, err := os.Open("/dev/mapper/recovered")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, size)
	if _, err := io.ReadFull(f, got); err != nil {
		t.Fatalf("reading /dev/mapper/recovered: %v", err)
	}
	if n, _ := f.Seek(0, io.SeekEnd); n != int64(size) {
		t.Errorf("/dev/mapper/recovered has %d bytes, want %d", n, size)
	}
	f.Close()
	if out, err := exec.Command("dmsetup", "remove", "recovered").CombinedOutput(); err != nil {
		t.Fatalf("dmsetup remove: %v\n%s", err, out)
	}
	return got
}

// answerPrompt types answer once the terminal shows prompt, then drains it.
func answerPrompt(master *os.File, prompt, answer string) {
	var seen bytes.Buffer
	buf := make([]byte, 1024)
	answered := false
	for {
		n, err := master.Read(buf)
		seen.Write(buf[:n])
		if !answered && strings.Contains(seen.String(), prompt) {
			master.WriteString(answer)
			answered = true
		}
		if err != nil {
			return
		}
	}
}

// openPTY returns a new pseudo-terminal's controller and its other side.
func openPTY() (*os.File, *os.File, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
