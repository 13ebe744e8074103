package fsys

import (
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	in := []byte(`22 27 0:21 / /proc rw,relatime - proc proc rw
36 35 98:0 /mnt1 /mnt/with\040space rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue
42 27 0:39 / /run/cryptvol/v1 rw,nosuid,nodev,noexec,relatime - fuse.cryptvol cryptvol rw,user_id=0,group_id=0
`)
	ms, err := parseMountInfo(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("got %d entries, want 3", len(ms))
	}
	m := ms[1]
	want := MountEntry{ID: 36, ParentID: 35, Major: 98, Minor: 0, Root: "/mnt1", MountPoint: "/mnt/with space",
		Options: "rw,noatime", FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"}
	if m != want {
		t.Errorf("entry with optional fields and an escape:\n got %+v\nwant %+v", m, want)
	}
	if ms[2].FSType != "fuse.cryptvol" || ms[2].MountPoint != "/run/cryptvol/v1" {
		t.Errorf("fuse entry: %+v", ms[2])
	}
	for _, bad := range []string{
		"22 27 0:21 / /proc rw,relatime proc proc rw\n",  // no separator
		"x 27 0:21 / /proc rw,relatime - proc proc rw\n", // bad id
		"22 27 021 / /proc rw,relatime - proc proc rw\n", // bad dev
		"22 27 0:21 / /proc rw,relatime - proc proc\n",   // short
	} {
		if _, err := parseMountInfo([]byte(bad)); err == nil {
			t.Errorf("malformed %q accepted", bad)
		}
	}
}

func TestUnescapeMountInfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:    "/a b",
		`/a\011\012`: "/a\t\n",
		`/a\134b`:    `/a\b`,
		`/a\04`:      `/a\04`, // too short to be an escape
		`/plain`:     "/plain",
	} {
		if got := unescapeMountInfo(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitMountOptions(t *testing.T) {
	flags, data := splitMountOptions("ro, noexec,data=ordered,suid,,errors=remount-ro")
	const want = 0x1 | 0x8 | 0x4 // MS_RDONLY | MS_NOEXEC | MS_NODEV; suid clears MS_NOSUID
	if flags != want {
		t.Errorf("flags = %#x, want %#x", flags, want)
	}
	if data != "data=ordered,errors=remount-ro" {
		t.Errorf("data = %q", data)
	}
	if flags, data := splitMountOptions(""); flags != 0x2|0x4 || data != "" {
		t.Errorf("defaults: flags %#x data %q, want nosuid,nodev and no data", flags, data)
	}
}
