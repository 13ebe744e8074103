package mount

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cryptvol/cryptvol/mount/loopdev"
)

// Registry is the directory where open vaults are recorded: for each, a state
// file <id>.json, the control socket <id>.sock, the server's log <id>.log, and
// the private FUSE mount <id>/ of the loop and fuse paths. Nothing in it is
// secret; it is mode 0700 and belongs to the user whose vaults it records.
// Where it is, is chosen in one place: DefaultRegistry (registries.go).
type Registry struct{ Dir string }

// State describes one open vault. It is written by the server process once
// the vault is ready, and read by list and close.
type State struct {
	ID         string    `json:"id"`
	File       string    `json:"file"`
	FileDev    uint64    `json:"file_dev"`
	FileIno    uint64    `json:"file_ino"`
	UUID       string    `json:"uuid"`
	Device     string    `json:"device"`
	MountPoint string    `json:"mount_point,omitempty"`
	Via        string    `json:"via"` // ViaLoop, ViaNBD or ViaFUSE
	ReadOnly   bool      `json:"read_only"`
	PID        int       `json:"pid"`
	PIDStart   uint64    `json:"pid_start"` // start time in /proc/PID/stat, against pid reuse
	Started    time.Time `json:"started"`
	Closing    bool      `json:"closing,omitempty"` // lazily unmounted, waiting for its last user
	// What makes Device this vault's, checked before a cleanup after the
	// server died touches it (CleanupStale): the loop device's backing file
	// (the FUSE file), or the task the kernel shows serving the NBD device.
	Backing *loopdev.BackingFile `json:"backing,omitempty"`
	NBDPid  int                  `json:"nbd_pid,omitempty"`
	// Checked is the read-only check the filesystem passed before it was
	// mounted (Config.Check), such as "e2fsck -n -f".
	Checked string `json:"checked,omitempty"`
	// UID is the user the server runs as: the owner of the vault's mounts.
	UID int `json:"uid"`
	// Driver is the userspace filesystem driver serving MountPoint on the
	// fuse path (fuse2fs, fusefat), DriverPID and DriverStart its process.
	Driver      string `json:"driver,omitempty"`
	DriverPID   int    `json:"driver_pid,omitempty"`
	DriverStart uint64 `json:"driver_start,omitempty"`
}

// newID returns a fresh id for an open vault: a prefix of its uuid (so a
// person can tell entries apart) and a random suffix (so two copies of one
// vault, which share a uuid, do not collide). A vault without a uuid (a
// VeraCrypt volume) gets "vol".
func newID(uuid string) string {
	var b [3]byte
	rand.Read(b[:])
	prefix := strings.ReplaceAll(uuid, "-", "")
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	if prefix == "" {
		prefix = "vol"
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (r Registry) path(id, ext string) string { return filepath.Join(r.Dir, id+ext) }

// SocketPath is the control socket of an open vault.
func (r Registry) SocketPath(id string) string { return r.path(id, ".sock") }

// LogPath is the server log of an open vault.
func (r Registry) LogPath(id string) string { return r.path(id, ".log") }

// FUSEDir is the private FUSE mount of an open vault on the loop path
// (fusefile.Serve makes it as BaseDir/ID with BaseDir = r.Dir).
func (r Registry) FUSEDir(id string) string { return filepath.Join(r.Dir, id) }

// scratchDir is where a new filesystem is mounted for a moment (MakeFilesystem).
func (r Registry) scratchDir(id string) string { return r.path(id, "-mnt") }

// Write records s atomically.
func (r Registry) Write(s State) error {
	if err := r.Ensure(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path(s.ID, ".json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.path(s.ID, ".json"))
}

// Remove deletes everything recorded for id except a FUSE mount directory.
func (r Registry) Remove(id string) {
	for _, ext := range []string{".json", ".json.tmp", ".sock"} {
		os.Remove(r.path(id, ext))
	}
}

// RemoveLog deletes the server log of id.
func (r Registry) RemoveLog(id string) { os.Remove(r.LogPath(id)) }

// List returns every recorded open vault, oldest first. A missing registry is
// an empty list.
func (r Registry) List() ([]State, error) {
	paths, err := filepath.Glob(filepath.Join(r.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var states []State
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // removed meanwhile
		}
		var s State
		if err := json.Unmarshal(b, &s); err != nil || s.ID+".json" != filepath.Base(p) {
			continue
		}
		states = append(states, s)
	}
	slices.SortFunc(states, func(a, b State) int { return a.Started.Compare(b.Started) })
	return states, nil
}

// Alive reports whether the server process of s still runs (same pid and
// the same start time, so a reused pid does not count; a zombie is dead).
func (s State) Alive() bool {
	start, err := processStart(s.PID)
	return err == nil && start == s.PIDStart
}

// processStart reads the start time (field 22) of a live process from /proc;
// a zombie (killed, not yet reaped) is an error.
func processStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("exited")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// selfStart is the start time of this process, for State.PIDStart.
func selfStart() uint64 {
	start, _ := processStart(os.Getpid())
	return start
}

// fileIdentity returns the device and inode of a file, which identify a vault
// however it is named.
func fileIdentity(path string) (dev, ino uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Dev, st.Ino, nil
}

// Find returns the open vault that target names: its mount point, its vault
// file, or its block device.
func (r Registry) Find(target string) (State, error) {
	states, err := r.List()
	if err != nil {
		return State{}, err
	}
	abs, _ := filepath.Abs(target)
	dev, ino, idErr := fileIdentity(target)
	for _, s := range states {
		switch {
		case s.MountPoint != "" && samePath(s.MountPoint, abs),
			s.Device == target || s.Device == abs,
			idErr == nil && s.FileDev == dev && s.FileIno == ino,
			s.File == abs:
			return s, nil
		}
	}
	return State{}, fmt.Errorf("%s: %w", target, ErrNotOpen)
}

// ErrNotOpen means no open vault matches what was named.
var ErrNotOpen = errors.New("no open vault has this mount point, file or device")

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
