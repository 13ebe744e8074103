package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestModuleOrder(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n" +
		"kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\n" +
		"kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-mod.ko:\n"
	writeFile(t, filepath.Join(dir, "modules.dep"), []byte(dep))
	writeFile(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/block/loop.ko\n"))
	got, err := moduleOrder(filepath.Join(dir, "modules.dep"), []string{"dm_crypt", "loop", "ext4", "jbd2"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[kernel/drivers/md/dm-mod.ko kernel/drivers/md/dm-crypt.ko kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/fs/ext4/ext4.ko]"
	if fmt.Sprint(got) != want {
		t.Fatalf("order %v\nwant %s", got, want)
	}
	if _, err := moduleOrder(filepath.Join(dir, "modules.dep"), []string{"nosuch"}); err == nil {
		t.Fatal("a module that does not exist was accepted")
	}
}

// TestReporter turns guest output into subtests: the results of a guest
// test and of its subtests come after its own result line.
func TestReporter(t *testing.T) {
	r := newReporter(t)
	for _, l := range []string{
		"=== RUN   TestA",
		"=== RUN   TestA/one",
		"    a_test.go:1: hello",
		"--- PASS: TestA (0.01s)",
		"    --- PASS: TestA/one (0.00s)",
		"    --- SKIP: TestA/two (0.00s)",
		"=== RUN   TestB",
		"    b_test.go:9: not here",
		"--- SKIP: TestB (0.00s)",
		"PASS",
	} {
		r.line(l)
	}
	r.finish()
	if r.ran != 2 || r.failed != 0 {
		t.Fatalf("ran %d, failed %d", r.ran, r.failed)
	}
}

// TestInitramfsProgram puts a dynamically linked program and its libraries
// into an archive.
func TestInitramfsProgram(t *testing.T) {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip(err)
	}
	r := NewInitramfs()
	if err := r.AddHostPath(sh); err != nil {
		t.Fatal(err)
	}
	libs, err := elfDependencies(sh)
	if err != nil || len(libs) == 0 {
		t.Skipf("%s: no libraries (%v)", sh, err)
	}
	for _, l := range libs {
		dir, _ := filepath.EvalSymlinks(filepath.Dir(l))
		if !r.Has(filepath.Join(dir, filepath.Base(l))) {
			t.Errorf("%s is not in the archive", l)
		}
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "initrd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := r.WriteTo(f); err != nil || n%4 != 0 {
		t.Fatalf("wrote %d bytes: %v", n, err)
	}
}

// TestSuiteJob: a suite's job runs Run and then each pattern of More in one
// boot, and fails if any of them fails.
func TestSuiteJob(t *testing.T) {
	job := suiteJob(Suite{Name: "x", Pkg: "internal/vmtest", Run: "^A$", More: []string{"^B$/^c"}, Loop: true, Minutes: 3})
	want := "rmmod nbd || exit 1\n" +
		"cd /src/internal/vmtest || exit 1\n" +
		"status=0\n" +
		"CRYPTVOL_E2E=require CRYPTVOL_LAB=guest /lab/bin/internal-vmtest.test -test.v -test.count=1 -test.timeout 3m -test.run '^A$' || status=1\n" +
		"CRYPTVOL_E2E=require CRYPTVOL_LAB=guest /lab/bin/internal-vmtest.test -test.v -test.count=1 -test.timeout 3m -test.run '^B$/^c' || status=1\n" +
		"exit $status\n"
	if job != want {
		t.Fatalf("job:\n%s\nwant:\n%s", job, want)
	}
}
