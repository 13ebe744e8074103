package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Where open vaults are recorded. Each user has registries of their own, so
// that a user never sees, nor can reach, another user's vaults; root reads
// them all.
//
//   - CRYPTVOL_RUN_DIR, when set, is the one registry, for anyone (tests that
//     must not touch the system's registries set it).
//   - root: /run/cryptvol.
//   - any other user: $XDG_RUNTIME_DIR/cryptvol, when XDG_RUNTIME_DIR names a
//     directory of the user's that no one else may write (it is not, after
//     `su` keeps the first user's); else /run/user/UID/cryptvol when
//     /run/user/UID is such a directory (a login session made it, but this
//     shell does not say so); else /tmp/cryptvol-UID, made 0700 and refused
//     unless it is a real directory of the user's and no one else's (tmux and
//     ssh-agent keep theirs the same way). The first two are tmpfs, so
//     nothing recorded outlives a reboot.
//
// A user's `list` and `close` read every one of their places that exists,
// so a vault opened from a login session is found from a shell without one,
// and the other way round. Root's read /run/cryptvol, /run/user/*/cryptvol
// and /tmp/cryptvol-*, each only if it belongs to the user its path names.
var places = layout{system: "/run/cryptvol", runUser: "/run/user", tmpPrefix: "/tmp/cryptvol-"}

// layout is where registries are: root's, the parent of users' runtime
// directories, and the prefix of the fallback under /tmp.
type layout struct{ system, runUser, tmpPrefix string }

// runDirName is a registry's name in a user's runtime directory.
const runDirName = "cryptvol"

// DefaultRegistry is where this process records the vaults it opens (see
// above). Every path of an open vault derives from it.
func DefaultRegistry() Registry {
	if d := os.Getenv("CRYPTVOL_RUN_DIR"); d != "" {
		return Registry{Dir: d}
	}
	return places.registries(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))[0]
}

// Registries are the registries this process reads for `list` and `close`:
// its own places, and for root every user's too. The first is
// DefaultRegistry.
func Registries() []Registry {
	if d := os.Getenv("CRYPTVOL_RUN_DIR"); d != "" {
		return []Registry{{Dir: d}}
	}
	return places.readable(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"))
}

// readable are the registries uid reads: for a user, each of their places
// that exists (the first always); for root, root's and every user's.
func (l layout) readable(uid int, xdg string) []Registry {
	if uid != 0 {
		regs := l.registries(uid, xdg)
		out := regs[:1]
		for _, r := range regs[1:] {
			if ownedDir(r.Dir, uid) == nil {
				out = append(out, r)
			}
		}
		return out
	}
	out := []Registry{{Dir: l.system}}
	runs, _ := filepath.Glob(filepath.Join(l.runUser, "*", runDirName))
	tmps, _ := filepath.Glob(l.tmpPrefix + "*")
	for _, d := range append(runs, tmps...) {
		name := strings.TrimPrefix(d, l.tmpPrefix)
		if strings.HasPrefix(d, l.runUser+"/") {
			name = filepath.Base(filepath.Dir(d))
		}
		owner, err := strconv.Atoi(name)
		if err != nil || owner <= 0 || ownedDir(d, owner) != nil {
			continue
		}
		out = append(out, Registry{Dir: d})
	}
	return out
}

// registries are the places of uid's registries in order of preference,
// given the XDG_RUNTIME_DIR it has; the first is where new vaults are
// recorded. Root has one; a user's last, under /tmp, is always there.
func (l layout) registries(uid int, xdg string) []Registry {
	if uid == 0 {
		return []Registry{{Dir: l.system}}
	}
	var regs []Registry
	add := func(parent string) {
		d := filepath.Join(parent, runDirName)
		if !slices.Contains(regs, Registry{Dir: d}) {
			regs = append(regs, Registry{Dir: d})
		}
	}
	if filepath.IsAbs(xdg) && privateDir(xdg, uid) == nil {
		add(filepath.Clean(xdg))
	}
	if d := filepath.Join(l.runUser, strconv.Itoa(uid)); privateDir(d, uid) == nil {
		add(d)
	}
	return append(regs, Registry{Dir: l.tmpPrefix + strconv.Itoa(uid)})
}

// privateDir checks that dir is a directory owned by uid that no one else
// may write.
func privateDir(dir string, uid int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || int(st.Uid) != uid || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not a directory of uid %d's alone", dir, uid)
	}
	return nil
}

// ownedDir checks that dir is a real directory (not a symlink) of uid's with
// mode 0700: what Ensure makes, and all a registry may be.
func ownedDir(dir string, uid int) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("%s belongs to uid %d, not %d", dir, st.Uid, uid)
	}
	if st.Mode&0o777 != 0o700 {
		return fmt.Errorf("%s has mode %o, not 700", dir, st.Mode&0o777)
	}
	return nil
}

// Ensure creates the registry directory (0700) if needed, and checks that it
// is a directory of this user's alone: a registry someone else made (in
// /tmp, say) could be watched or fed false entries.
func (r Registry) Ensure() error {
	err := os.Mkdir(r.Dir, 0o700)
	if errors.Is(err, os.ErrNotExist) {
		err = os.MkdirAll(r.Dir, 0o700)
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("registry: %w", err)
	}
	uid := os.Geteuid()
	if err := ownedDir(r.Dir, uid); err != nil {
		var st syscall.Stat_t
		if syscall.Lstat(r.Dir, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR && int(st.Uid) == uid {
			// Ours, with a wider mode (made by an older version, or by
			// hand): narrow it.
			if err := os.Chmod(r.Dir, 0o700); err == nil {
				return nil
			}
		}
		return fmt.Errorf("registry: %w: refusing to record open vaults there", err)
	}
	return nil
}

// Entry is an open vault and the registry that records it.
type Entry struct {
	Registry Registry
	State    State
}

// ListAll returns the open vaults recorded in regs, oldest first.
func ListAll(regs []Registry) ([]Entry, error) {
	var out []Entry
	for _, r := range regs {
		states, err := r.List()
		if err != nil {
			return nil, err
		}
		for _, s := range states {
			out = append(out, Entry{Registry: r, State: s})
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.State.Started.Compare(b.State.Started) })
	return out, nil
}

// FindAll returns the open vault that target names (see Registry.Find) in the
// first of regs that has it.
func FindAll(regs []Registry, target string) (Entry, error) {
	for _, r := range regs {
		s, err := r.Find(target)
		if err == nil {
			return Entry{Registry: r, State: s}, nil
		}
		if !errors.Is(err, ErrNotOpen) {
			return Entry{}, err
		}
	}
	return Entry{}, fmt.Errorf("%s: %w", target, ErrNotOpen)
}
