package vmtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Disk is a virtio disk of the guest, backed by a raw host file (/dev/vda,
// /dev/vdb, ... in the order given). With Log set, qemu's blklogwrites
// driver records every write and flush reaching it into that file (the
// dm-log-writes format, read by ReadLog).
type Disk struct {
	Path string
	Log  string
}

// BootOptions say what to boot.
type BootOptions struct {
	Kernel  *Kernel
	Initrd  string
	Job     string            // the job script the guest runs (a file under /lab/jobs)
	Env     map[string]string // environment of the job (passed on the kernel command line)
	Disks   []Disk
	Console string // where the kernel's console (ttyS0) goes; empty: discarded
	Memory  int    // MiB; 0 means 2048
	CPUs    int    // 0 means 2
}

// VM is a running guest. Its second serial port (the job's output) is read
// line by line from Lines; Lines is closed when qemu exits.
type VM struct {
	cmd   *exec.Cmd
	Lines <-chan string
	done  chan struct{}
	err   error // qemu's exit, valid after done
	Accel string
}

// Boot starts qemu. The caller must Kill the VM (a test registers it as a
// cleanup: no guest outlives its test). qemu also dies with this process
// (PR_SET_PDEATHSIG).
func Boot(o BootOptions) (*VM, error) {
	return boot(o, Accelerator(o.Kernel))
}

func boot(o BootOptions, accel string) (*VM, error) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, errNoQemu
	}
	args, err := qemuArgs(o, accel)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	lines := make(chan string, 1024)
	vm := &VM{cmd: cmd, Lines: lines, done: make(chan struct{}), Accel: accel}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		io.Copy(io.Discard, out)
		close(lines)
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		vm.err = err
		close(vm.done)
	}()
	return vm, nil
}

func qemuArgs(o BootOptions, accel string) ([]string, error) {
	mem, cpus := o.Memory, o.CPUs
	if mem == 0 {
		mem = 2048
	}
	if cpus == 0 {
		cpus = 2
	}
	console := "null"
	if o.Console != "" {
		console = "file:" + o.Console
	}
	// no_timer_check: under TCG on a loaded host the kernel's check of the
	// IO-APIC timer can fail and panic the boot (seen once in 200 trials).
	cmdline := []string{"console=ttyS0", "panic=-1", "oops=panic", "loglevel=4", "no_timer_check", "rdinit=/init", "lab.job=" + o.Job}
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := o.Env[k]
		if strings.ContainsAny(k+v, " \t\n\"'") || k == "" {
			return nil, fmt.Errorf("guest environment %s=%q: no spaces or quotes allowed", k, v)
		}
		cmdline = append(cmdline, "labenv."+k+"="+v)
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-machine", "q35", "-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
		"-display", "none", "-monitor", "none",
		"-kernel", o.Kernel.Vmlinuz(), "-initrd", o.Initrd,
		"-append", strings.Join(cmdline, " "),
		"-serial", console, "-serial", "stdio",
	}
	if accel == "kvm" {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	for i, d := range o.Disks {
		id := fmt.Sprintf("disk%d", i)
		if d.Log != "" {
			args = append(args, "-blockdev", fmt.Sprintf("driver=blklogwrites,node-name=%s,file.driver=file,file.filename=%s,log.driver=file,log.filename=%s,log-sector-size=512", id, d.Path, d.Log))
		} else {
			args = append(args, "-blockdev", fmt.Sprintf("driver=raw,node-name=%s,file.driver=file,file.filename=%s", id, d.Path))
		}
		args = append(args, "-device", fmt.Sprintf("virtio-blk-pci,drive=%s", id))
	}
	return args, nil
}

// Kill ends qemu at once (a power cut for the guest) and waits for it,
// discarding what the guest sent and was not read yet.
func (vm *VM) Kill() {
	vm.Cut()
	for range vm.Lines { // drain, so the reader can finish
	}
	<-vm.done
}

// Cut ends qemu at once, without waiting: the lines the guest sent before
// remain to be read from Lines, which is closed after the last one.
func (vm *VM) Cut() {
	if vm.cmd.Process != nil {
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Wait waits until qemu exits (the guest powers off) or the timeout passes,
// then kills it. It returns qemu's exit error, or a timeout error.
func (vm *VM) Wait(timeout time.Duration) error {
	select {
	case <-vm.done:
		return vm.err
	case <-time.After(timeout):
		vm.Kill()
		return fmt.Errorf("the guest did not power off within %v", timeout)
	}
}

// Collect returns every line the guest sends until qemu exits, and qemu's
// exit error; past the timeout it kills qemu and says so. each, if not nil,
// sees every line as it comes.
func (vm *VM) Collect(timeout time.Duration, each func(string)) ([]string, error) {
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-vm.Lines:
			if !ok {
				return lines, vm.Wait(time.Minute)
			}
			lines = append(lines, l)
			if each != nil {
				each(l)
			}
		case <-deadline:
			vm.Kill()
			return lines, fmt.Errorf("the guest did not power off within %v", timeout)
		}
	}
}

// Done is closed when qemu has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

var (
	accelOnce sync.Once
	accel     string
)

// Accelerator returns "kvm" when a KVM guest boots on this machine and
// "tcg" (qemu's emulator) otherwise: /dev/kvm may exist on a machine whose
// KVM guests stall at boot (nested virtualization without support), so it
// is probed once per process by booting a guest that only says a word and
// powers off, which must be heard within 20 seconds. CRYPTVOL_LAB_ACCEL
// forces one.
func Accelerator(k *Kernel) string {
	accelOnce.Do(func() {
		accel = os.Getenv("CRYPTVOL_LAB_ACCEL")
		if accel != "" {
			return
		}
		// The answer is kept in the cache, per host kernel.
		var u unix.Utsname
		unix.Uname(&u)
		memo := filepath.Join(CacheDir(), "accel-"+unix.ByteSliceToString(u.Release[:]))
		if b, err := os.ReadFile(memo); err == nil && (string(b) == "kvm" || string(b) == "tcg") {
			accel = string(b)
			return
		}
		accel = "tcg"
		if probeKVM(k) {
			accel = "kvm"
		}
		os.WriteFile(memo, []byte(accel), 0o644)
	})
	return accel
}

func probeKVM(k *Kernel) bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	dir, err := os.MkdirTemp("", "cryptvol-kvm-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	// An initramfs whose /init prints a word and powers off.
	r := NewInitramfs()
	r.AddFile("/usr/bin/busybox", k.Busybox(), 0o755)
	r.AddData("/init", []byte("#!/usr/bin/busybox sh\n/usr/bin/busybox echo KVM-PROBE-OK > /dev/ttyS1\n/usr/bin/busybox poweroff -f\n"), 0o755)
	initrd := filepath.Join(dir, "initrd")
	fh, err := os.Create(initrd)
	if err != nil {
		return false
	}
	_, err = r.WriteTo(fh)
	fh.Close()
	if err != nil {
		return false
	}
	vm, err := boot(BootOptions{Kernel: k, Initrd: initrd, Job: "probe", Memory: 256, CPUs: 1}, "kvm")
	if err != nil {
		return false
	}
	defer vm.Kill()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-vm.Lines:
			if !ok {
				return false
			}
			if strings.Contains(l, "KVM-PROBE-OK") {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

var errNoQemu = errors.New("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
