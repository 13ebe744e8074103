package vmtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// TestLogReplay records guest runs with qemu's blklogwrites and checks each
// at every flush point and at random points between flushes (replay.go):
// one run of 4 operations by default; CRYPTVOL_REPLAY_RUNS runs of
// CRYPTVOL_REPLAY_OPS operations with scripts/logreplay, alternating the
// path (nbd, loop) and the vault's filesystem (ext4, xfs). It needs root:
// the points are checked with this machine's loop devices and filesystems.
func TestLogReplay(t *testing.T) {
	e2e.Root(t)
	e2e.Tools(t, "losetup", "mount", "umount", "e2fsck", "xfs_repair")
	fsTypes, _ := os.ReadFile("/proc/filesystems")
	for _, fs := range []string{"ext4", "xfs"} {
		if !strings.Contains(string(fsTypes), "\t"+fs+"\n") {
			e2e.Skip(t, "this kernel cannot mount "+fs+", which checking a replayed log needs")
		}
	}
	l := needLab(t)
	e2e.CheckLeaks(t)
	runs := envInt(t, "CRYPTVOL_REPLAY_RUNS", 1)
	ops := envInt(t, "CRYPTVOL_REPLAY_OPS", 4)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x1065))
	var b strings.Builder
	fmt.Fprintf(&b, "\nwrite-log replay (seed %d)\n%-5s %-5s %20s %7s %7s %7s %11s %9s %10s\n", seed, "path", "fs", "seed", "entries", "flushes", "random", "open failed", "unclean", "lost files")
	total := map[string]int{}
	for k := 0; k < runs; k++ {
		via := []string{"nbd", "loop"}[k%2]
		fs := []string{"ext4", "xfs"}[(k/2)%2]
		dir := t.TempDir()
		rec, err := l.Record(dir, via, fs, seed+uint64(k), ops)
		if err != nil {
			t.Fatal(err)
		}
		points, err := Replay(rec, dir, 0.25, rng)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(rec.Log)
		var flushes, random, openFailed, unclean, lost int
		for _, p := range points {
			if p.Random {
				random++
			} else {
				flushes++
			}
			if !p.Opened {
				openFailed++
			}
			if p.InnerFsck != "clean" || p.OuterFsck != "clean" {
				unclean++
			}
			lost += len(p.Lost)
			if !p.Intact() {
				t.Errorf("%s %s seed %d: %s", via, fs, rec.Seed, p)
			}
		}
		entries := 0
		if len(points) > 0 {
			entries = points[len(points)-1].Entry
		}
		row := fmt.Sprintf("%-5s %-5s %20d %7d %7d %7d %11d %9d %10d", via, fs, rec.Seed, entries, flushes, random, openFailed, unclean, lost)
		t.Log(row)
		fmt.Fprintln(&b, row)
		total["runs"]++
		total["flush points"] += flushes
		total["random points"] += random
		total["open failed"] += openFailed
		total["unclean"] += unclean
		total["lost files"] += lost
	}
	fmt.Fprintf(&b, "total: %d runs, %d flush points, %d random points; %d vaults that did not open, %d unclean filesystems, %d lost files\n",
		total["runs"], total["flush points"], total["random points"], total["open failed"], total["unclean"], total["lost files"])
	fmt.Print(b.String())
}
