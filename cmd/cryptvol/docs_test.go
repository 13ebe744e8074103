package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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
