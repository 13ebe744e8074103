package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestManPagesUpToDate regenerates the man pages and compares them with those
// committed under docs/man, so they never go stale.
func TestManPagesUpToDate(t *testing.T) {
	dir := t.TempDir()
	if err := genMan(newRootCommand(&ui{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}), dir); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	have, _ := filepath.Glob(filepath.Join("..", "..", "docs", "man", "*.1"))
	names := func(paths []string) []string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		return n
	}
	stale := !slices.Equal(names(want), names(have))
	for _, p := range want {
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(filepath.Join("..", "..", "docs", "man", filepath.Base(p)))
		if !bytes.Equal(a, b) {
			stale = true
			t.Logf("%s differs", filepath.Base(p))
		}
	}
	if stale {
		t.Fatal("docs/man is stale: run `go run ./cmd/cryptvol man docs/man` and commit the result")
	}
}

// TestGuideCommandsAreTested checks that every cryptvol command docs/GUIDE.md
// shows is run as written by testdata/e2e/guide.txtar, or by
// testdata/user/guide.txtar, which runs the "Without root" section as an
// ordinary user (the scripts may add options after it, to answer prompts from
// files).
func TestGuideCommandsAreTested(t *testing.T) {
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "GUIDE.md"))
	if err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, name := range []string{filepath.Join("testdata", "e2e", "guide.txtar"), filepath.Join("testdata", "user", "guide.txtar")} {
		script, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(script), "\n") {
			l = strings.TrimSpace(l)
			if rest, ok := strings.CutPrefix(l, "as "); ok {
				// as NAME [-flag [value]]... exits CODE|exec PROG ARGS...
				if i := strings.Index(rest, " exits "); i >= 0 {
					l = rest[i+1:]
				} else if i := strings.Index(rest, " exec "); i >= 0 {
					l = rest[i+1:]
				}
			}
			if i := strings.Index(l, "cryptvol "); i >= 0 && (strings.HasPrefix(l, "exits ") || strings.HasPrefix(l, "exec cryptvol")) {
				run = append(run, strings.TrimSuffix(l[i:], "&serve&"))
			}
		}
	}
	n := 0
	for _, l := range strings.Split(string(guide), "\n") {
		cmd, ok := strings.CutPrefix(l, "$ ")
		if !ok {
			continue
		}
		cmd = strings.TrimPrefix(cmd, "sudo ")
		if !strings.HasPrefix(cmd, "cryptvol ") {
			continue
		}
		n++
		if !slices.ContainsFunc(run, func(r string) bool { return r == cmd || strings.HasPrefix(r, cmd+" ") }) {
			t.Errorf("docs/GUIDE.md shows %q, which neither guide script runs", cmd)
		}
	}
	if n < 15 {
		t.Fatalf("only %d cryptvol commands found in the guide", n)
	}
}
