package mount

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// testLayout is a layout under a temporary directory, with dirs made as
// named: path relative to the root, owner uid, mode.
func testLayout(t *testing.T, dirs ...struct {
	path string
	uid  int
	mode os.FileMode
}) (layout, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes directories of other users")
	}
	root := t.TempDir()
	for _, d := range dirs {
		p := filepath.Join(root, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, d.uid, d.uid); err != nil {
			t.Fatal(err)
		}
	}
	return layout{system: filepath.Join(root, "run/cryptvol"), runUser: filepath.Join(root, "run/user"), tmpPrefix: filepath.Join(root, "tmp/cryptvol-")}, root
}

type dir = struct {
	path string
	uid  int
	mode os.FileMode
}

func dirs(regs []Registry, root string) []string {
	var out []string
	for _, r := range regs {
		rel, _ := filepath.Rel(root, r.Dir)
		out = append(out, rel)
	}
	return out
}

func TestRegistriesOfAUser(t *testing.T) {
	l, root := testLayout(t,
		dir{"run/user/1000", 1000, 0o700},
		dir{"xdg", 1000, 0o700},
		dir{"su-xdg", 0, 0o700},           // root's, kept by su
		dir{"shared-xdg", 1000, 0o777},    // others may write it
		dir{"run/user/1001", 1000, 0o700}, // not 1001's
	)
	for _, c := range []struct {
		name, xdg string
		want      []string
	}{
		{"XDG_RUNTIME_DIR first", filepath.Join(root, "xdg"), []string{"xdg/cryptvol", "run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
		{"no XDG_RUNTIME_DIR", "", []string{"run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
		{"XDG_RUNTIME_DIR of another user", filepath.Join(root, "su-xdg"), []string{"run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
		{"XDG_RUNTIME_DIR writable by others", filepath.Join(root, "shared-xdg"), []string{"run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
		{"relative XDG_RUNTIME_DIR", "xdg", []string{"run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
		{"the same place twice", filepath.Join(root, "run/user/1000"), []string{"run/user/1000/cryptvol", "tmp/cryptvol-1000"}},
	} {
		if got := dirs(l.registries(1000, c.xdg), root); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := dirs(l.registries(1001, ""), root); !slices.Equal(got, []string{"tmp/cryptvol-1001"}) {
		t.Errorf("uid 1001, whose /run/user directory is not its own: %v", got)
	}
	if got := dirs(l.registries(0, filepath.Join(root, "xdg")), root); !slices.Equal(got, []string{"run/cryptvol"}) {
		t.Errorf("root: %v", got)
	}
}

func TestRegistriesReadable(t *testing.T) {
	l, root := testLayout(t,
		dir{"run/cryptvol", 0, 0o700},
		dir{"run/user/1000/cryptvol", 1000, 0o700},
		dir{"run/user/1001/cryptvol", 1000, 0o700}, // made by 1000 for 1001: not 1001's
		dir{"run/user/1002/cryptvol", 1002, 0o755}, // not 0700
		dir{"tmp/cryptvol-1000", 1000, 0o700},
		dir{"tmp/cryptvol-1003", 1003, 0o700},
		dir{"tmp/cryptvol-x", 0, 0o700},
	)
	if err := os.Symlink(filepath.Join(root, "tmp/cryptvol-1003"), filepath.Join(root, "tmp/cryptvol-1004")); err != nil {
		t.Fatal(err)
	}
	got := dirs(l.readable(0, ""), root)
	want := []string{"run/cryptvol", "run/user/1000/cryptvol", "tmp/cryptvol-1000", "tmp/cryptvol-1003"}
	if !slices.Equal(got, want) {
		t.Errorf("root reads %v, want %v", got, want)
	}
	got = dirs(l.readable(1000, ""), root)
	if want := []string{"tmp/cryptvol-1000"}; !slices.Equal(got, want) {
		// /run/user/1000 is not 0700 here: it is not a place of 1000's.
		t.Errorf("uid 1000 reads %v, want %v", got, want)
	}
	got = dirs(l.readable(1005, ""), root)
	if want := []string{"tmp/cryptvol-1005"}; !slices.Equal(got, want) {
		t.Errorf("a user with no registry reads %v, want the one it would make, %v", got, want)
	}
}

func TestRegistryEnsure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes directories of other users")
	}
	root := t.TempDir()
	fresh := Registry{Dir: filepath.Join(root, "fresh")}
	if err := fresh.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := ownedDir(fresh.Dir, 0); err != nil {
		t.Errorf("a new registry: %v", err)
	}
	wide := Registry{Dir: filepath.Join(root, "wide")}
	os.Mkdir(wide.Dir, 0o755)
	os.Chmod(wide.Dir, 0o755)
	if err := wide.Ensure(); err != nil {
		t.Fatalf("a registry of ours with mode 755: %v", err)
	}
	if err := ownedDir(wide.Dir, 0); err != nil {
		t.Errorf("mode not narrowed: %v", err)
	}
	theirs := Registry{Dir: filepath.Join(root, "theirs")}
	os.Mkdir(theirs.Dir, 0o700)
	os.Chown(theirs.Dir, 1000, 1000)
	if err := theirs.Ensure(); err == nil {
		t.Error("a registry directory of another user is accepted")
	}
	link := Registry{Dir: filepath.Join(root, "link")}
	os.Symlink(fresh.Dir, link.Dir)
	if err := link.Ensure(); err == nil {
		t.Error("a symlink is accepted as a registry")
	}
	file := Registry{Dir: filepath.Join(root, "file")}
	os.WriteFile(file.Dir, nil, 0o600)
	if err := file.Ensure(); err == nil {
		t.Error("a file is accepted as a registry")
	}
}

func TestListAllAndFindAll(t *testing.T) {
	a, b := Registry{Dir: t.TempDir()}, Registry{Dir: t.TempDir()}
	sa := State{ID: "aaaa-1", File: "/v/a.cv", MountPoint: "/m/a"}
	sb := State{ID: "bbbb-1", File: "/v/b.cv", MountPoint: "/m/b"}
	sb.Started = sa.Started.Add(1)
	if err := a.Write(sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(sb); err != nil {
		t.Fatal(err)
	}
	all, err := ListAll([]Registry{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].State.ID != sa.ID || all[0].Registry != a || all[1].Registry != b {
		t.Errorf("ListAll: %+v", all)
	}
	e, err := FindAll([]Registry{a, b}, "/m/b")
	if err != nil || e.Registry != b || e.State.ID != sb.ID {
		t.Errorf("FindAll /m/b: %+v, %v", e, err)
	}
	if _, err := FindAll([]Registry{a}, "/m/b"); err == nil {
		t.Error("found a vault of a registry not searched")
	}
}
