package mount

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestOwnsNBDDevice: a stale NBD device is this vault's only while the task
// the kernel shows serving it is the one its server recorded; with no record
// (an older server), only if that task is not alive; an unconnected device is
// nobody's and needs no note.
func TestOwnsNBDDevice(t *testing.T) {
	sys := t.TempDir()
	os.Mkdir(filepath.Join(sys, "nbd3"), 0o755)
	setTask := func(pid int) {
		os.WriteFile(filepath.Join(sys, "nbd3", "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644)
	}
	var r Registry
	for _, tc := range []struct {
		recorded, task int // task 0: not connected
		owned          bool
		why            string
	}{
		{1234, 1234, true, ""},
		{1234, 5678, false, "is served by task 5678 now"},
		{1234, 0, false, ""},
		{0, os.Getpid(), false, "is served by task " + strconv.Itoa(os.Getpid()) + " now"},
		{0, 1 << 30, true, ""},
	} {
		os.Remove(filepath.Join(sys, "nbd3", "pid"))
		if tc.task != 0 {
			setTask(tc.task)
		}
		owned, why := r.ownsDevice(State{Via: ViaNBD, Device: "/dev/nbd3", NBDPid: tc.recorded}, sys)
		if owned != tc.owned || why != tc.why {
			t.Errorf("recorded %d, serving %d: %v %q, want %v %q", tc.recorded, tc.task, owned, why, tc.owned, tc.why)
		}
	}
	setTask(0)
	if owned, why := r.ownsDevice(State{Via: ViaNBD, Device: "/dev/nbd3", NBDPid: 1}, sys); owned || why == "" {
		t.Errorf("a malformed pid file: %v %q", owned, why)
	}
}
