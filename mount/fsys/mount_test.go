package fsys

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// mountTmpfs mounts a small tmpfs at a new directory (Mount creates it) and
// unmounts it at the end of the test if the test did not.
func mountTmpfs(t *testing.T, readOnly bool, options string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := Mount("tmpfs", dir, "tmpfs", readOnly, options); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ok, _ := IsMounted(dir); ok {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

func TestMountUnmount(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := mountTmpfs(t, false, "size=1m,noexec")
	m, ok, err := MountAt(dir)
	if err != nil || !ok {
		t.Fatalf("MountAt(%s) = %v, %v", dir, ok, err)
	}
	if m.FSType != "tmpfs" {
		t.Errorf("type %q, want tmpfs", m.FSType)
	}
	for _, o := range []string{"nosuid", "nodev", "noexec", "rw"} {
		if !strings.Contains(","+m.Options+",", ","+o+",") {
			t.Errorf("mount options %q lack %s", m.Options, o)
		}
	}
	if !strings.Contains(m.SuperOptions, "size=1024k") {
		t.Errorf("filesystem options %q lack size=1024k", m.SuperOptions)
	}
	if err := Unmount(dir, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := IsMounted(dir); ok || err != nil {
		t.Fatalf("still mounted after Unmount: %v %v", ok, err)
	}
	if err := Unmount(dir, false); !errors.Is(err, ErrNotMounted) {
		t.Errorf("second Unmount: %v, want ErrNotMounted", err)
	}
}

func TestMountPointCreated0700(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "b")
	if err := Mount("tmpfs", dir, "tmpfs", false, ""); err != nil {
		t.Fatal(err)
	}
	defer Unmount(dir, false)
	// The created parent; the mount point itself now shows the tmpfs root.
	if st, err := os.Stat(filepath.Join(parent, "a")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("created directory: %v, %v; want mode 0700", st, err)
	}
}

func TestMountReadOnly(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := mountTmpfs(t, true, "")
	err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("write on a read-only mount: %v, want EROFS", err)
	}
	if err := Unmount(dir, false); err != nil {
		t.Fatal(err)
	}
}

func TestUnmountBusyNamesHolders(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := mountTmpfs(t, false, "")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}

	// A process whose working directory is inside.
	sleeper := exec.Command("sleep", "600")
	sleeper.Dir = sub
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	// A file this process holds open.
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	err = Unmount(dir, false)
	var be *BusyError
	if !errors.As(err, &be) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Unmount of a busy mount: %v, want a *BusyError that is EBUSY", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		"pid " + strconv.Itoa(sleeper.Process.Pid) + " (sleep) working directory " + sub,
		"pid " + strconv.Itoa(os.Getpid()) + " (",
		"open file " + filepath.Join(dir, "open"),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("busy error %q does not name %q", msg, want)
		}
	}
	if ok, _ := IsMounted(dir); !ok {
		t.Fatal("a refused unmount unmounted")
	}

	f.Close()
	sleeper.Process.Kill()
	sleeper.Wait()
	if err := Unmount(dir, false); err != nil {
		t.Fatalf("Unmount once the holders are gone: %v", err)
	}
}

func TestUnmountLazyWhileBusy(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	dir := mountTmpfs(t, false, "")
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Unmount(dir, true); err != nil {
		t.Fatalf("lazy Unmount: %v", err)
	}
	if ok, _ := IsMounted(dir); ok {
		t.Error("still in the mount table after a lazy unmount")
	}
	if _, err := f.Write([]byte("still works")); err != nil {
		t.Errorf("open file after a lazy unmount: %v", err)
	}
}

// TestOpenMountPointRefusesSymlink: a mount point that is a symbolic link is
// refused (mount(2) would follow it wherever it points); links among its
// parents are resolved into Path.
func TestOpenMountPointRefusesSymlink(t *testing.T) {
	e2e.Root(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	os.Mkdir(target, 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if _, err := OpenMountPoint(link, 0o755); !errors.Is(err, ErrSymlinkMountPoint) {
		t.Fatalf("a symbolic link to a directory: %v", err)
	}
	if err := Mount("tmpfs", link, "tmpfs", false, "size=1m"); !errors.Is(err, ErrSymlinkMountPoint) {
		t.Fatalf("Mount through a symbolic link: %v", err)
	}
	if ok, _ := IsMounted(target); ok {
		unix.Unmount(target, 0)
		t.Fatal("mounted on the link's target")
	}
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	if _, err := OpenMountPoint(dangling, 0o755); !errors.Is(err, ErrSymlinkMountPoint) {
		t.Fatalf("a dangling symbolic link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Fatal("the dangling link's target was created")
	}
	mp, err := OpenMountPoint(filepath.Join(link, "sub"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	if mp.Path() != filepath.Join(target, "sub") {
		t.Fatalf("Path() = %s, want %s", mp.Path(), filepath.Join(target, "sub"))
	}
}

// TestMountOnFollowsTheDirectory: between opening a mount point and mounting,
// its directory is renamed and a symbolic link to somewhere else put in its
// place: the filesystem lands on the directory that was opened, not where the
// link points. Both the new mount API and the mount(2) fallback.
func TestMountOnFollowsTheDirectory(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	for _, newAPI := range []bool{true, false} {
		dir, _ := filepath.EvalSymlinks(t.TempDir())
		a, b, elsewhere := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "elsewhere")
		os.Mkdir(elsewhere, 0o755)
		mp, err := OpenMountPoint(a, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		os.Symlink(elsewhere, a)
		err = mountOn("tmpfs", mp, "tmpfs", true, "size=1m,noexec", newAPI)
		mp.Close()
		if err != nil {
			t.Fatalf("newAPI=%v: %v", newAPI, err)
		}
		if ok, _ := IsMounted(elsewhere); ok {
			unix.Unmount(elsewhere, 0)
			t.Fatalf("newAPI=%v: mounted where the link points", newAPI)
		}
		m, ok, err := MountAt(b)
		if err != nil || !ok {
			t.Fatalf("newAPI=%v: not mounted on the opened directory: %v", newAPI, err)
		}
		for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
			if !strings.Contains(","+m.Options+",", ","+o+",") {
				t.Errorf("newAPI=%v: mount options %q lack %s", newAPI, m.Options, o)
			}
		}
		if !strings.Contains(m.SuperOptions, "size=1024k") {
			t.Errorf("newAPI=%v: filesystem options %q lack size=1024k", newAPI, m.SuperOptions)
		}
		if err := Unmount(b, false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMountExt4NoInitItable: ext4 is mounted with noinit_itable, so the
// kernel does not write a new filesystem's inode tables behind its user,
// unless the options ask for init_itable.
func TestMountExt4NoInitItable(t *testing.T) {
	e2e.Root(t)
	e2e.CheckLeaks(t)
	e2e.Tools(t, "mkfs.ext4", "losetup")
	img := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	dir := filepath.Join(t.TempDir(), "mnt")
	for _, c := range []struct {
		options string
		want    bool
	}{{"", true}, {"noatime", true}, {"init_itable=5", false}, {"init_itable", false}} {
		if err := Mount(dev, dir, "", false, c.options); err != nil {
			t.Fatal(err)
		}
		m, _, err := MountAt(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(","+m.SuperOptions+",", ",noinit_itable,"); got != c.want {
			t.Errorf("options %q: filesystem options %q, noinit_itable %v, want %v", c.options, m.SuperOptions, got, c.want)
		}
		if err := Unmount(dir, false); err != nil {
			t.Fatal(err)
		}
	}
}
