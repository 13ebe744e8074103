package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSnapshotSeesMounts(t *testing.T) {
	s := Snapshot()
	if !slices.Contains(s, "mount /") {
		t.Fatalf("the root mount is not in the snapshot: %v", s)
	}
	if d := s.Minus(s); len(d) != 0 {
		t.Fatalf("s minus s = %v", d)
	}
	if d := append(State{"mount /x"}, s...).Minus(s); len(d) != 1 || d[0] != "mount /x" {
		t.Fatalf("new entry not reported: %v", d)
	}
}

func TestOurs(t *testing.T) {
	tmp := os.TempDir()
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/mnt/x", true},
		{"/run/cryptvol/abc", true},
		{filepath.Join(tmp, "mine", "mnt"), true},
		{filepath.Join(tmp, "mine"), true},
		{filepath.Join(tmp, "other", "mnt"), false},
		{filepath.Join(tmp, "mine2", "mnt"), false},
	} {
		if got := ours(tc.path, []string{filepath.Join(tmp, "mine")}); got != tc.want {
			t.Errorf("ours(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
