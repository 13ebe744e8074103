package nbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// Tests against real NBD clients: libnbd's nbdinfo and nbdcopy, and qemu-img.

// run runs a client program and returns its stdout; a failure includes stderr.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %q: %w\n%s", name, args, err, stderr.Bytes())
	}
	return out, nil
}

type nbdinfoExport struct {
	Name         string `json:"export-name"`
	Description  string `json:"description"`
	Size         int64  `json:"export-size"`
	ReadOnly     bool   `json:"is_read_only"`
	CanFlush     bool   `json:"can_flush"`
	CanFUA       bool   `json:"can_fua"`
	CanMultiConn bool   `json:"can_multi_conn"`
	CanTrim      bool   `json:"can_trim"`
	CanZero      bool   `json:"can_zero"`
	CanCache     bool   `json:"can_cache"`
	BlockMin     int64  `json:"block_size_minimum"`
	BlockPref    int64  `json:"block_size_preferred"`
	BlockMax     int64  `json:"block_size_maximum"`
}

func nbdinfo(t testing.TB, args ...string) []nbdinfoExport {
	t.Helper()
	out := run(t, "nbdinfo", append([]string{"--json"}, args...)...)
	var info struct {
		Protocol string          `json:"protocol"`
		Exports  []nbdinfoExport `json:"exports"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("nbdinfo output: %v\n%s", err, out)
	}
	if info.Protocol != "newstyle-fixed" {
		t.Errorf("protocol %q", info.Protocol)
	}
	return info.Exports
}

func TestNBDInfo(t *testing.T) {
	e2e.Tools(t, "nbdinfo")
	for _, tc := range []struct {
		name   string
		sector int
		opts   Options
	}{
		{"named", 4096, Options{Name: "vol", Description: "cryptvol test"}},
		{"read-only", 512, Options{ReadOnly: true}},
		{"discard", 4096, Options{AllowDiscard: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := nbdtest.New(3<<20, tc.sector)
			var dev Device = mem
			if tc.opts.AllowDiscard {
				dev = nbdtest.Discarding{Device: mem}
			}
			_, sock := startNBD(t, dev, tc.opts)
			exports := nbdinfo(t, nbdURI(sock))
			if len(exports) != 1 {
				t.Fatalf("%d exports", len(exports))
			}
			e := exports[0]
			t.Logf("%+v", e)
			writable := !tc.opts.ReadOnly
			if e.Size != 3<<20 || !e.CanFlush || !e.CanFUA || !e.CanMultiConn || e.CanCache ||
				e.ReadOnly != tc.opts.ReadOnly || e.CanZero != writable || e.CanTrim != tc.opts.AllowDiscard {
				t.Errorf("nbdinfo sees %+v", e)
			}
			if e.BlockMin != int64(tc.sector) || e.BlockPref != int64(max(4096, tc.sector)) || e.BlockMax != 32<<20 {
				t.Errorf("block sizes %d/%d/%d", e.BlockMin, e.BlockPref, e.BlockMax)
			}
			if tc.opts.Name != "" {
				named := nbdinfo(t, "nbd+unix:///"+tc.opts.Name+"?"+url.Values{"socket": {sock}}.Encode())
				if len(named) != 1 || named[0].Name != tc.opts.Name || named[0].Description != tc.opts.Description {
					t.Errorf("by name: %+v", named)
				}
				listed := nbdinfo(t, "--list", nbdURI(sock))
				if len(listed) != 1 || listed[0].Name != tc.opts.Name {
					t.Errorf("--list: %+v", listed)
				}
				if _, err := runErr("nbdinfo", "nbd+unix:///other?"+url.Values{"socket": {sock}}.Encode()); err == nil {
					t.Errorf("nbdinfo found an export named other")
				}
			}
		})
	}
}

// testImage returns size random bytes with an all-zero stretch in the middle,
// which nbdcopy sends as NBD_CMD_WRITE_ZEROES.
func testImage(size int) []byte {
	img := make([]byte, size)
	rand.Read(img)
	clear(img[size/4 : size/2])
	return img
}

func TestNBDCopy(t *testing.T) {
	e2e.Tools(t, "nbdcopy")
	for _, tc := range []struct {
		sector int
		size   int
		args   []string
	}{
		{512, 8 << 20, nil}, // default: 4 connections, parallel requests
		{4096, 36 << 20, []string{"--connections=1", "--request-size=33554432"}}, // the largest requests
	} {
		t.Run(fmt.Sprint(tc.sector), func(t *testing.T) {
			dev := nbdtest.New(int64(tc.size), tc.sector)
			_, sock := startNBD(t, dev, Options{})
			dir := t.TempDir()
			img := testImage(tc.size)
			in := filepath.Join(dir, "in.img")
			if err := os.WriteFile(in, img, 0o600); err != nil {
				t.Fatal(err)
			}
			// nbdcopy must see a device full of non-zero data to need
			// WRITE_ZEROES for the hole.
			data := bytes.Repeat([]byte{0xee}, tc.size)
			dev.Set(data, 0)

			run(t, "nbdcopy", append(tc.args, "--flush", in, nbdURI(sock))...)
			data, durable := dev.Contents(), dev.Durable()
			if !bytes.Equal(data, img) {
				t.Fatal("device differs from the image nbdcopy wrote")
			}
			if dev.Syncs() == 0 || !bytes.Equal(durable, img) {
				t.Fatal("nbdcopy --flush did not make the image durable")
			}

			out := filepath.Join(dir, "out.img")
			run(t, "nbdcopy", append(tc.args, nbdURI(sock), out)...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatal("image read back by nbdcopy differs")
			}
			if n := dev.Conflicts(); n != 0 {
				t.Fatalf("%d overlapping device calls", n)
			}
		})
	}
}

func TestNBDQemuImgCompare(t *testing.T) {
	e2e.Tools(t, "qemu-img")
	for _, sector := range sectorSizes {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			const size = 4 << 20
			dev := nbdtest.New(size, sector)
			_, sock := startNBD(t, dev, Options{ReadOnly: true})
			img := testImage(size)
			dev.Set(img, 0)
			plain := filepath.Join(t.TempDir(), "plain.img")
			if err := os.WriteFile(plain, img, 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", plain, nbdURI(sock))

			// And it notices a difference.
			dev.Set([]byte{img[size-1] ^ 1}, size-1)
			out, err := runErr("qemu-img", "compare", "-f", "raw", "-F", "raw", plain, nbdURI(sock))
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("qemu-img compare of differing images: %v\n%s", err, out)
			}
		})
	}
}
