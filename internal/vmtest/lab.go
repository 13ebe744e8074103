package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Lab is a guest ready to boot: the kernel, and initramfs images with
// busybox, the modules, tools, test binaries and cryptvol, built from the
// module at root when first asked for.
type Lab struct {
	Kernel *Kernel
	root   string
	dir    string
	logf   func(string, ...any)

	tmplMu           sync.Mutex // making template disks
	mu               sync.Mutex
	full, lean       string
	fullErr, leanErr error
}

// NewLab prepares the kernel (see PrepareKernel) and a new temporary
// directory for the guests' files (Close removes it).
func NewLab(root string, logf func(string, ...any)) (*Lab, error) {
	for _, tool := range []string{"qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (.ci/run lists the lab's packages)", tool)
		}
	}
	k, err := PrepareKernel(logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cryptvol-lab-")
	if err != nil {
		return nil, err
	}
	return &Lab{Kernel: k, dir: dir, root: root, logf: logf}, nil
}

// FullInitrd is the initramfs of the suites: every guest tool, the test
// binaries of every suite's package.
func (l *Lab) FullInitrd() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full == "" && l.fullErr == nil {
		l.full = filepath.Join(l.dir, "full.cpio")
		l.fullErr = l.build(l.full, false)
	}
	return l.full, l.fullErr
}

// LeanInitrd is the smaller initramfs of the power-cut tests, which boot
// many times: cryptvol, this package's tests, and the tools they use.
func (l *Lab) LeanInitrd() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lean == "" && l.leanErr == nil {
		l.lean = filepath.Join(l.dir, "lean.cpio")
		l.leanErr = l.build(l.lean, true)
	}
	return l.lean, l.leanErr
}

// Close removes the lab's files.
func (l *Lab) Close() { os.RemoveAll(l.dir) }

// Dir is a directory for the files of guests (disks, logs); Close removes it.
func (l *Lab) Dir() string { return l.dir }

func (l *Lab) build(initrd string, lean bool) error {
	root, logf := l.root, l.logf
	r := NewInitramfs()
	r.AddFile("/usr/bin/busybox", l.Kernel.Busybox(), 0o755)
	var modules []string
	for _, m := range l.Kernel.Modules {
		if lean && slices.Contains(leanSkipsModules, moduleName(m)) {
			continue
		}
		modules = append(modules, m)
		r.AddFile("/lab/modules/"+m, filepath.Join(l.Kernel.Dir, "modules", m), 0o644)
	}
	r.AddData("/lab/modules.list", []byte(strings.Join(modules, "\n")+"\n"), 0o644)

	// Host tools, then busybox applets for every other command.
	tools := guestTools
	if lean {
		tools = leanTools
	}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			logf("lab: %s is not on this host; the guest has no %s", tool, tool)
			continue
		}
		if err := r.AddHostPath(p); err != nil {
			return fmt.Errorf("guest tool %s: %w", tool, err)
		}
	}
	applets, err := exec.Command(l.Kernel.Busybox(), "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, a := range strings.Fields(string(applets)) {
		// usr/bin/x and bin/x are one directory in the merged-/usr layout.
		name := filepath.Base(a)
		if name == "busybox" || r.Has("/usr/bin/"+name) || r.Has("/usr/sbin/"+name) {
			continue
		}
		r.AddSymlink("/usr/bin/"+name, "busybox")
	}
	// sh is dash, as on Debian: busybox's sh runs its own applets before
	// the programs in PATH, so losetup would not be util-linux's there.
	r.AddSymlink("/usr/bin/sh", "dash")
	r.AddData("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	r.AddData("/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	r.AddSymlink("/etc/mtab", "/proc/self/mounts")
	r.AddData("/init", []byte(initScript), 0o755)

	// The test binaries, cryptvol, and what the tests read from the tree.
	bin := filepath.Join(l.dir, "bin")
	pkgs := map[string]bool{"internal/vmtest": true}
	for _, s := range Suites {
		if !lean {
			pkgs[s.Pkg] = true
		}
	}
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		exe := filepath.Join(bin, testBinary(p))
		if _, err := os.Stat(exe); err == nil {
			r.AddFile("/lab/bin/"+testBinary(p), exe, 0o755)
			r.AddDir("/src/" + p)
			continue // built for the other initramfs
		}
		logf("lab: building the %s tests for the guest", p)
		if err := goBuild(root, "test", "-c", "-o", exe, "./"+p); err != nil {
			return err
		}
		r.AddFile("/lab/bin/"+testBinary(p), exe, 0o755)
		if err := addTree(r, filepath.Join(root, p, "testdata"), "/src/"+p+"/testdata"); err != nil {
			return err
		}
		r.AddDir("/src/" + p)
	}
	if _, err := os.Stat(filepath.Join(bin, "cryptvol")); err != nil {
		if err := goBuild(root, "build", "-o", filepath.Join(bin, "cryptvol"), "./cmd/cryptvol"); err != nil {
			return err
		}
	}
	r.AddFile("/usr/bin/cryptvol", filepath.Join(bin, "cryptvol"), 0o755)
	if err := addTree(r, filepath.Join(root, "docs"), "/src/docs"); err != nil {
		return err
	}
	// The VeraCrypt and TrueCrypt images beside the repository, where the
	// e2e scripts look for them (../../../shared from /src/cmd/cryptvol).
	if err := addTree(r, filepath.Join(root, "..", "shared", "interop"), "/shared/interop"); err != nil {
		return err
	}
	for _, s := range Suites {
		r.AddData("/lab/jobs/"+s.Name, []byte(suiteJob(s)), 0o755)
	}
	if script := os.Getenv("CRYPTVOL_LAB_SCRIPT"); script != "" {
		b, err := os.ReadFile(script)
		if err != nil {
			return fmt.Errorf("CRYPTVOL_LAB_SCRIPT: %w", err)
		}
		r.AddData("/lab/jobs/script", b, 0o755)
	}
	for name, job := range extraJobs {
		r.AddData("/lab/jobs/"+name, []byte(job), 0o755)
	}

	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	if _, err := r.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write the initramfs: %w", err)
	}
	return f.Close()
}

// testBinary names the guest's test binary of a package directory.
func testBinary(pkg string) string { return strings.ReplaceAll(pkg, "/", "-") + ".test" }

// goBuild runs the go command at the module root for the guest: static
// binaries (CGO_ENABLED=0), so they need no library.
func goBuild(root string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// addTree copies a host directory's regular files into the guest, if it
// exists.
func addTree(r *Initramfs, host, guest string) error {
	if _, err := os.Stat(host); err != nil {
		return nil
	}
	return filepath.Walk(host, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(host, p)
		r.AddFile(filepath.Join(guest, rel), p, fi.Mode())
		return nil
	})
}

// ModuleRoot returns the directory of the go.mod of the module holding the
// working directory.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := string(bytes.TrimSpace(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// initScript is the guest's /init: it mounts the pseudo filesystems, loads
// the modules, exports the labenv.KEY=VALUE words of the kernel command line
// as the job's environment, runs /lab/jobs/$lab.job with its output on the
// second serial port, and powers off.
const initScript = `#!/usr/bin/busybox sh
export PATH=/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp DM_DISABLE_UDEV=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t tmpfs shm /dev/shm
hostname lab
ip link set lo up
exec >/dev/ttyS1 2>&1 </dev/null
stty -F /dev/ttyS1 raw -echo 2>/dev/null
while read -r m; do
	insmod /lab/modules/$m || echo "LAB-ERROR insmod $m"
done </lab/modules.list
job=
for w in $(cat /proc/cmdline); do
	case "$w" in
	lab.job=*) job=${w#lab.job=} ;;
	labenv.*=*) export "${w#labenv.}" ;;
	esac
done
echo "LAB-BOOTED $(uname -r)"
/usr/bin/dash /lab/jobs/$job
echo "LAB-EXIT $?"
sync
poweroff -f
`

// suiteJob is the guest script of a suite.
func suiteJob(s Suite) string {
	var b strings.Builder
	if s.Loop {
		b.WriteString("rmmod nbd || exit 1\n")
	}
	fmt.Fprintf(&b, "cd /src/%s || exit 1\n", s.Pkg)
	b.WriteString("status=0\n")
	for _, run := range append([]string{s.Run}, s.More...) {
		fmt.Fprintf(&b, "CRYPTVOL_E2E=require CRYPTVOL_LAB=guest /lab/bin/%s -test.v -test.count=1 -test.timeout %dm -test.run '%s' || status=1\n",
			testBinary(s.Pkg), s.Minutes, run)
	}
	b.WriteString("exit $status\n")
	return b.String()
}

// extraJobs are the guest scripts of the power-cut and log-replay tests.
var extraJobs = map[string]string{
	"powercut": "cd /src/internal/vmtest && CRYPTVOL_LAB=guest /lab/bin/" + testBinary("internal/vmtest") +
		" -test.v -test.count=1 -test.timeout 60m -test.run '^TestGuestPowercut$'\n",
}
