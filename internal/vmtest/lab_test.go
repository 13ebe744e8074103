package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// The lab is built once per test process, by the first test that needs it.
var (
	labOnce sync.Once
	lab     *Lab
	labErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if lab != nil {
		lab.Close()
	}
	os.Exit(code)
}

// needLab returns the lab, or skips the test saying why it cannot be built
// (a failure under CRYPTVOL_E2E=require). Inside the guest it skips: the
// lab's host tests do not nest.
func needLab(t *testing.T) *Lab {
	t.Helper()
	if InGuest() {
		t.Skip("host test: this is the guest")
	}
	labOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			labErr = err
			return
		}
		lab, labErr = NewLab(root, t.Logf)
	})
	if labErr != nil {
		e2e.Skip(t, "the kernel lab cannot be built: "+labErr.Error())
	}
	return lab
}

// TestLab runs the guest suites (suites.go): in ./scripts/test those not
// marked Full, all of them with CRYPTVOL_LAB=full (scripts/kernel-lab).
// CRYPTVOL_LAB_SUITES=name,name picks some.
func TestLab(t *testing.T) {
	l := needLab(t)
	for _, s := range selectedSuites() {
		t.Run(s.Name, func(t *testing.T) { l.RunSuite(t, s) })
	}
}

// TestLabScript runs the shell script named by CRYPTVOL_LAB_SCRIPT in the
// guest and shows its output: a way to try things in the lab's kernel
// (scripts/kernel-lab --script FILE).
func TestLabScript(t *testing.T) {
	if os.Getenv("CRYPTVOL_LAB_SCRIPT") == "" {
		t.Skip("CRYPTVOL_LAB_SCRIPT is not set")
	}
	l := needLab(t)
	initrd, err := l.FullInitrd()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: initrd, Job: "script", Console: filepath.Join(t.TempDir(), "console.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Kill)
	out, err := vm.Collect(30*time.Minute, func(l string) { fmt.Println(l) })
	if err != nil {
		t.Error(err)
	}
	if !slices.Contains(out, "LAB-EXIT 0") {
		t.Error("the script did not end with status 0")
	}
}
