//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// User is an ordinary user made for a test: no password, no home, no login
// shell; a runtime directory /run/user/UID as a login session would have.
type User struct {
	Name     string
	UID, GID int
	RunDir   string // /run/user/UID, 0700, the user's
}

// NewUser makes an ordinary user for the test (useradd), named after label
// with a random prefix, and a runtime directory /run/user/UID. At the end of
// the test every process of the user is killed, and the user and the
// directory are removed; rp, if not nil, removes them if the test binary
// dies first. It skips (or fails) without root or useradd.
func NewUser(t testing.TB, rp *Reaper, label string) User {
	t.Helper()
	Root(t)
	Tools(t, "useradd", "userdel")
	if _, err := os.Stat("/run/user"); errors.Is(err, os.ErrNotExist) {
		// Made for the test (below): removed after, once the last user's
		// directory in it is gone.
		t.Cleanup(func() { os.Remove("/run/user") })
		rp.Add(Undo{RemoveEmptyDir: "/run/user"})
	}
	var b [3]byte
	rand.Read(b[:])
	name := "cvt" + hex.EncodeToString(b[:]) + label
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	u := User{Name: name}
	t.Cleanup(func() { removeUser(t, u) })
	pw, err := user.Lookup(name)
	if err != nil {
		rp.Add(Undo{User: &u})
		t.Fatal(err)
	}
	u.UID, _ = strconv.Atoi(pw.Uid)
	u.GID, _ = strconv.Atoi(pw.Gid)
	u.RunDir = filepath.Join("/run/user", pw.Uid)
	rp.Add(Undo{User: &u})
	// /run/user is 0755 as logind makes it (MkdirAll would make it 0700,
	// which would shut every user out of their runtime directory).
	if err := os.Mkdir("/run/user", 0o755); err == nil {
		os.Chmod("/run/user", 0o755) // whatever the umask
	} else if !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := os.Mkdir(u.RunDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	if err := os.Chown(u.RunDir, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return u
}

// removeUser kills what the user left running, removes the runtime
// directory (unmounting lazily what is mounted in it) and the user. t may
// be nil (a reaper's).
func removeUser(t testing.TB, u User) {
	if u.UID > 0 {
		for _, pid := range ProcessesOf(u.UID) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for deadline := time.Now().Add(5 * time.Second); len(ProcessesOf(u.UID)) > 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if u.RunDir != "" {
		UnmountUnder(u.RunDir)
		os.RemoveAll(u.RunDir)
	}
	if out, err := exec.Command("userdel", u.Name).CombinedOutput(); err != nil && t != nil {
		t.Errorf("userdel %s: %v: %s", u.Name, err, out)
	}
}

// ProcessesOf lists the live processes (not zombies) of uid.
func ProcessesOf(uid int) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		var st syscall.Stat_t
		if syscall.Stat(d, &st) != nil || int(st.Uid) != uid || zombie(d+"/stat") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// UnmountUnder lazily unmounts every mount under dir, deepest first.
func UnmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 4 && under(unescape(f[4]), dir) {
			mps = append(mps, unescape(f[4]))
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		unix.Unmount(mps[i], unix.MNT_DETACH)
	}
}

// The POSIX ACL of /dev/fuse, as the system.posix_acl_access attribute
// holds it (see acl(5)): a version, then entries of tag, permissions, id.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = 0xffffffff
	aclXattr    = "system.posix_acl_access"
	fuseDevice  = "/dev/fuse"
)

var fuseACL sync.Mutex // one test at a time changes /dev/fuse's ACL

// GrantFUSE gives the users read-write access to /dev/fuse for the test,
// with an entry each in its ACL, where they do not have it already (Debian
// makes it 0666; a machine without udev leaves it 0600). The device's ACL
// and mode are restored at the end of the test. Where the device takes no
// ACL, it is made 0666 for the test instead. rp, if not nil, restores them
// if the test binary dies first.
func GrantFUSE(t testing.TB, rp *Reaper, users ...User) {
	t.Helper()
	var need []User
	for _, u := range users {
		if !canOpenAs(fuseDevice, u) {
			need = append(need, u)
		}
	}
	if len(need) == 0 {
		return
	}
	fuseACL.Lock()
	var st syscall.Stat_t
	if err := syscall.Stat(fuseDevice, &st); err != nil {
		fuseACL.Unlock()
		Skip(t, fuseDevice+" is not available")
	}
	mode := st.Mode & 0o7777
	old := make([]byte, 1024)
	n, err := unix.Getxattr(fuseDevice, aclXattr, old)
	hadACL := err == nil
	old = old[:max(n, 0)]
	was := fuseACLState{Mode: uint32(mode), HadACL: hadACL, ACL: old}
	rp.Add(Undo{FUSEACL: &was})
	t.Cleanup(func() {
		defer fuseACL.Unlock()
		restoreFUSE(was)
	})
	var acl bytes.Buffer
	binary.Write(&acl, binary.LittleEndian, uint32(aclVersion))
	entry := func(tag, perm uint16, id uint32) {
		binary.Write(&acl, binary.LittleEndian, struct {
			Tag, Perm uint16
			ID        uint32
		}{tag, perm, id})
	}
	entry(aclUserObj, uint16(mode>>6&7), aclNoID)
	for _, u := range need {
		entry(aclUser, 6, uint32(u.UID))
	}
	entry(aclGroupObj, uint16(mode>>3&7), aclNoID)
	entry(aclMask, 6|uint16(mode>>3&7), aclNoID)
	entry(aclOther, uint16(mode&7), aclNoID)
	if err := unix.Setxattr(fuseDevice, aclXattr, acl.Bytes(), 0); err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("ACL on %s: %v", fuseDevice, err)
		}
		if err := os.Chmod(fuseDevice, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range need {
		if !canOpenAs(fuseDevice, u) {
			t.Fatalf("%s still cannot open %s", u.Name, fuseDevice)
		}
	}
}

// restoreFUSE gives /dev/fuse back its mode and ACL.
func restoreFUSE(was fuseACLState) {
	if was.HadACL {
		unix.Setxattr(fuseDevice, aclXattr, was.ACL, 0)
	} else {
		unix.Removexattr(fuseDevice, aclXattr)
	}
	os.Chmod(fuseDevice, os.FileMode(was.Mode))
}

// canOpenAs reports whether u may open path for reading and writing.
func canOpenAs(path string, u User) bool {
	cmd := exec.Command("sh", "-c", `exec 3<>"$0"`, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	return cmd.Run() == nil
}
