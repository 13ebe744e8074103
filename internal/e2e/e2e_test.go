package e2e

import (
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
