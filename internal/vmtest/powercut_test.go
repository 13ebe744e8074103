package vmtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPowercut runs power-cut trials (powercut.go) on both paths, nbd and
// loop, alternately with ext4 and xfs in the vault: one per path by default
// (ext4 through nbd, xfs through loop), CRYPTVOL_POWERCUT_TRIALS per path
// with scripts/powercut. It prints the
// trials as a table and fails if any is not intact. CRYPTVOL_POWERCUT_SEED
// repeats a run.
func TestPowercut(t *testing.T) {
	l := needLab(t)
	trials := envInt(t, "CRYPTVOL_POWERCUT_TRIALS", 1)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRYPTVOL_POWERCUT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CRYPTVOL_POWERCUT_SEED: %v", err)
		}
	}
	t.Logf("seed %d", seed)
	var mu sync.Mutex
	results := map[string][]*Trial{}
	t.Run("paths", func(t *testing.T) {
		for i, via := range []string{"nbd", "loop"} {
			t.Run(via, func(t *testing.T) {
				t.Parallel()
				got, err := l.Powercut(PowercutOptions{Via: via, Trials: trials, FSOffset: i, Seed: seed + uint64(i)<<32, MaxDelay: 4 * time.Second, Logf: t.Logf})
				mu.Lock()
				results[via] = got
				mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				for _, tr := range got {
					if !tr.Intact() {
						t.Errorf("trial not intact:\n%s", tr.Row())
					}
				}
			})
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\npower-cut trials (seed %d)\n%s\n", seed, TrialHeader)
	for _, via := range []string{"nbd", "loop"} {
		for _, tr := range results[via] {
			fmt.Fprintln(&b, tr.Row())
		}
	}
	fmt.Fprintf(&b, "\n%-5s %7s %7s %12s %12s %9s %12s %6s\n", "path", "trials", "intact", "not checked", "open failed", "unclean", "lost files", "ops")
	for _, via := range []string{"nbd", "loop"} {
		var n, intact, unchecked, openFailed, unclean, lost, ops int
		for _, tr := range results[via] {
			n++
			ops += tr.Done
			switch {
			case tr.Intact():
				intact++
			case !tr.Verified:
				unchecked++
				continue
			}
			if !tr.Opened {
				openFailed++
			}
			if tr.Opened && (tr.InnerFsck != "clean" || tr.OuterFsck != "clean") {
				unclean++
			}
			lost += len(tr.Lost)
		}
		fmt.Fprintf(&b, "%-5s %7d %7d %12d %12d %9d %12d %6d\n", via, n, intact, unchecked, openFailed, unclean, lost, ops)
	}
	fmt.Print(b.String())
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, s)
	}
	return n
}
