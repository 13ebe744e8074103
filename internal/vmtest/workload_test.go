package vmtest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWorkloadVerdict runs the workload in a directory of this machine and
// checks that Verdict accepts what it left, and catches a file that lost its
// last operation, a missing file and an extra one.
func TestWorkloadVerdict(t *testing.T) {
	dir := t.TempDir()
	const seed, n = 42, 200
	files := Files{}
	kinds := map[OpKind]int{}
	for i := range n {
		op := NextOp(seed, i, files)
		if err := op.Do(dir); err != nil {
			t.Fatal(err)
		}
		files = op.Apply(files)
		kinds[op.Kind]++
	}
	for k := OpWrite; k <= OpDelete; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %s in %d operations", k, n)
		}
	}
	list := func() map[string]string {
		lines, err := ListFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		return ParseListing(lines)
	}
	got := list()
	if lost, checked := Verdict(seed, n, false, got); len(lost) != 0 || checked != len(files) {
		t.Fatalf("after %d operations: lost %v, %d of %d files checked", n, lost, checked, len(files))
	}
	// As if operation n-1 had not completed: its file is wrong...
	last := NextOp(seed, n-1, replayFiles(seed, n-1))
	if lost, _ := Verdict(seed, n-1, false, got); len(lost) == 0 && last.Kind != OpTruncate {
		t.Errorf("operation %d (%s %s) undone, but nothing found lost", n-1, last.Kind, last.Name)
	}
	// ...unless it was in flight: then its file is not checked.
	if lost, _ := Verdict(seed, n-1, true, got); len(lost) != 0 {
		t.Errorf("operation %d in flight: lost %v", n-1, lost)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	os.WriteFile(filepath.Join(dir, names[0]), []byte("torn"), 0o644)
	os.Remove(filepath.Join(dir, names[1]))
	os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644)
	lost, _ := Verdict(seed, n, false, list())
	if len(lost) != 3 {
		t.Fatalf("a torn, a missing and a stray file: found %v", lost)
	}
}

func replayFiles(seed uint64, n int) Files {
	files := Files{}
	for i := range n {
		files = NextOp(seed, i, files).Apply(files)
	}
	return files
}

// TestNextOpDeterministic: the host and the guest compute the same stream.
func TestNextOpDeterministic(t *testing.T) {
	a, b := replayFiles(7, 300), replayFiles(7, 300)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d files", len(a), len(b))
	}
	for name := range a {
		if FileSum(a[name]) != FileSum(b[name]) {
			t.Fatalf("%s differs between two runs", name)
		}
	}
	if c := replayFiles(8, 300); FileSum(c["f00"]) == FileSum(a["f00"]) && FileSum(c["f01"]) == FileSum(a["f01"]) {
		t.Fatal("another seed gives the same files")
	}
}
