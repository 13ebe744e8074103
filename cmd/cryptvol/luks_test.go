package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cryptvol/cryptvol/internal/e2e"
	"github.com/cryptvol/cryptvol/testvectors/gen/lukshostile"
)

// TestLUKSScripts runs the CLI scenarios of testdata/luks, which check LUKS
// volumes with the host's cryptsetup (skipped without it, failed under
// CRYPTVOL_E2E=require).
func TestLUKSScripts(t *testing.T) {
	e2e.Tools(t, "cryptsetup")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/luks",
		RequireExplicitExec: true,
		Setup:               func(env *testscript.Env) error { env.Setenv("GORACE", noRaceExitSleep); return nil },
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    cmdExits,
			"patch":    cmdPatch,
			"truncate": cmdTruncate,
		},
	})
}

// TestHostileLUKSCLI runs every generated hostile LUKS volume through the real
// CLI: `info` and `open --test-passphrase` give the exit code the case
// documents (info 0 for a header that reads, 4 otherwise; open 0, 3 or 4),
// never a panic or a hang, and peak under 100 MiB above the same commands on
// the healthy base.
func TestHostileLUKSCLI(t *testing.T) {
	dir := t.TempDir()
	env := []string{"CRYPTVOL_RUN_DIR=" + filepath.Join(dir, "run")}
	const limit = 2 * time.Minute
	bases := map[int]lukshostile.Base{}
	for v, make := range map[int]func(string) (lukshostile.Base, error){1: lukshostile.MakeBase1, 2: lukshostile.MakeBase2} {
		b, err := make(filepath.Join(dir, fmt.Sprintf("base%d.img", v)))
		if err != nil {
			t.Fatal(err)
		}
		bases[v] = b
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, append(bases[2].Passphrase, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	baseRSS := int64(0)
	for _, b := range bases {
		for _, args := range [][]string{{"info", b.Path}, {"open", b.Path, "--test-passphrase", "--passphrase-file", pw}} {
			r := runCLI(t, env, limit, args...)
			if r.code != 0 {
				t.Fatalf("%v on the base: %d\n%s", args, r.code, r.stderr)
			}
			baseRSS = max(baseRSS, r.maxRSS)
		}
	}
	codes := map[string]int{}
	for _, c := range lukshostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v.img")
			if err := c.Make(bases[c.Version], path); err != nil {
				t.Fatal(err)
			}
			wantInfo, wantOpen := 0, 0
			switch {
			case c.Read != lukshostile.OK:
				wantInfo, wantOpen = 4, 4
			case c.Unlock == lukshostile.WrongPassphrase:
				wantOpen = 3
			case c.Unlock == lukshostile.Refused || c.Data == lukshostile.Refused:
				wantOpen = 4
			}
			for _, tc := range []struct {
				args []string
				want int
			}{{[]string{"info", path}, wantInfo}, {[]string{"open", path, "--test-passphrase", "--passphrase-file", pw}, wantOpen}} {
				r := runCLI(t, env, limit, tc.args...)
				if r.code != tc.want {
					t.Fatalf("cryptvol %s: exit %d, want %d\n%s", tc.args[0], r.code, tc.want, r.stderr)
				}
				if r.code != 0 && !strings.Contains(r.stderr, "cryptvol: error: ") {
					t.Fatalf("cryptvol %s: exit %d without an error message:\n%s", tc.args[0], r.code, r.stderr)
				}
				if r.maxRSS > baseRSS+100<<10 {
					t.Fatalf("cryptvol %s peaked at %d KiB, the base at %d", tc.args[0], r.maxRSS, baseRSS)
				}
				codes[fmt.Sprintf("%s %d", tc.args[0], r.code)]++
			}
		})
	}
	t.Logf("%d hostile LUKS volumes through the CLI: %v", len(lukshostile.Cases()), codes)
}
