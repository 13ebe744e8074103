package kdf

import (
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo = "MemTotal:       24683652 kB\nMemFree:        1000000 kB\nMemAvailable:   8388608 kB\n"

// TestMemoryHeadroom checks the sources of available memory on made-up
// /proc and /sys trees: MemAvailable alone, a cgroup v2 limit below it (the
// smallest among the cgroup and its ancestors, reclaimable cache not
// counted), a cgroup v1 hierarchical limit, and no limit.
func TestMemoryHeadroom(t *testing.T) {
	const v2mounts = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
	const v1mounts = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  uint64
		what  string
	}{
		{"meminfo only", map[string]string{"proc/meminfo": meminfo}, 8 << 30, "available memory"},
		{"v2 limit", map[string]string{
			"proc/meminfo":                                meminfo,
			"proc/self/cgroup":                            "0::/user.slice/app\n",
			"proc/self/mountinfo":                         v2mounts,
			"sys/fs/cgroup/user.slice/app/memory.max":     "max\n",
			"sys/fs/cgroup/user.slice/app/memory.current": "100\n",
			"sys/fs/cgroup/user.slice/memory.max":         "3221225472\n",
			"sys/fs/cgroup/user.slice/memory.current":     "1073741824\n",
			"sys/fs/cgroup/user.slice/memory.stat":        "anon 5\ninactive_file 536870912\n",
		}, 3<<30 - 1<<29, "the memory left in this process's cgroup"},
		{"v2 unlimited", map[string]string{
			"proc/meminfo":             meminfo,
			"proc/self/cgroup":         "0::/\n",
			"proc/self/mountinfo":      v2mounts,
			"sys/fs/cgroup/memory.max": "max\n",
		}, 8 << 30, "available memory"},
		{"v1 limit", map[string]string{
			"proc/meminfo":        meminfo,
			"proc/self/cgroup":    "4:memory:/process_api/x\n1:cpu:/\n",
			"proc/self/mountinfo": v1mounts,
			"sys/fs/cgroup/memory/process_api/x/memory.stat":           "cache 0\nhierarchical_memory_limit 2147483648\ntotal_inactive_file 0\n",
			"sys/fs/cgroup/memory/process_api/x/memory.usage_in_bytes": "1073741824\n",
		}, 1 << 30, "the memory left in this process's cgroup"},
		{"v1 unlimited", map[string]string{
			"proc/meminfo":        meminfo,
			"proc/self/cgroup":    "4:memory:/process_api/x\n",
			"proc/self/mountinfo": v1mounts,
			"sys/fs/cgroup/memory/process_api/x/memory.stat":           "hierarchical_memory_limit 9223372036854771712\n",
			"sys/fs/cgroup/memory/process_api/x/memory.usage_in_bytes": "6164480\n",
		}, 8 << 30, "available memory"},
		{"over the limit", map[string]string{
			"proc/meminfo":                   meminfo,
			"proc/self/cgroup":               "0::/a\n",
			"proc/self/mountinfo":            v2mounts,
			"sys/fs/cgroup/a/memory.max":     "1000\n",
			"sys/fs/cgroup/a/memory.current": "2000\n",
		}, 0, "the memory left in this process's cgroup"},
		{"nothing known", map[string]string{}, 0, ""},
	} {
		got, what := memoryHeadroom(writeTree(t, tc.files))
		if got != tc.want || what != tc.what {
			t.Errorf("%s: %d (%s), want %d (%s)", tc.name, got, what, tc.want, tc.what)
		}
	}
}

// TestAvailableMemoryHere: this machine's headroom is known and plausible.
func TestAvailableMemoryHere(t *testing.T) {
	avail, what := availableMemory()
	if avail == 0 {
		t.Skip("available memory unknown here")
	}
	t.Logf("%s: %d MiB", what, avail>>20)
	if phys := physicalMemory(); phys != 0 && avail > phys {
		t.Fatalf("available %d > physical %d", avail, phys)
	}
}
