package vmtest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cryptvol/cryptvol/container"
)

// The stronger power cut: qemu's blklogwrites driver records every write and
// flush that reaches the guest's disk while it makes a vault and runs the
// workload to its end; the log is then replayed into a fresh image up to
// each flush point (everything before it, as a disk that honours flushes
// must hold after a power cut there) and at random points between flushes
// (everything up to the last flush, and a random half of the writes after
// it: unflushed writes may or may not have reached the platter). At each
// point the host opens the vault, lets both filesystems replay their
// journals, runs fsck -n on both and compares the workload's files. This is
// what shows whether cryptvol answers a FLUSH before the ciphertext is
// durable, as xfstests does with dm-log-writes.

// Recording is a guest run recorded by blklogwrites.
type Recording struct {
	Via, FS string
	Seed    uint64
	Ops     int
	Log     string // the write log; the disk it describes started empty
}

// Record boots a guest whose disk logs its writes, makes the vault there
// and runs ops operations of the workload, then closes everything and
// powers off.
func (l *Lab) Record(dir, via, fs string, seed uint64, ops int) (*Recording, error) {
	initrd, err := l.LeanInitrd()
	if err != nil {
		return nil, err
	}
	rec := &Recording{Via: via, FS: fs, Seed: seed, Ops: ops, Log: filepath.Join(dir, fmt.Sprintf("record-%s-%s-%d.log", via, fs, seed))}
	disk := filepath.Join(dir, "record.img")
	if err := createSparse(disk, diskSize); err != nil {
		return nil, err
	}
	defer os.Remove(disk)
	if err := createSparse(rec.Log, 0); err != nil { // qemu opens, not creates, the log
		return nil, err
	}
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: initrd, Job: "powercut", CPUs: 1, Memory: 1024,
		Disks: []Disk{{Path: disk, Log: rec.Log}},
		Env: map[string]string{"PC_SETUP": "/dev/vda", "PC_WORK": "/dev/vda", "PC_FS": fs, "PC_VIA": via,
			"PC_SEED": strconv.FormatUint(seed, 10), "PC_OPS": strconv.Itoa(ops)}})
	if err != nil {
		return nil, err
	}
	defer vm.Kill()
	var out []string
	finished := false
	timeout := time.After(10 * time.Minute)
	for {
		select {
		case line, ok := <-vm.Lines:
			if !ok {
				if err := vm.Wait(time.Minute); err != nil || !finished {
					return nil, fmt.Errorf("the recorded guest failed (%v):\n%s", err, lastLines(out))
				}
				return rec, nil
			}
			out = append(out, line)
			if line == "PC finished" {
				finished = true
			}
		case <-timeout:
			return nil, fmt.Errorf("the recorded guest did not finish within 10 minutes:\n%s", lastLines(out))
		}
	}
}

// Point is the check of a recording at one point of its write log.
type Point struct {
	Entry     int  // entries before the point
	Random    bool // between flushes, with unflushed writes dropped
	Dropped   int  // writes dropped after the last flush
	Done      int  // workload operations completed before the point
	Inflight  bool
	Opened    bool
	InnerFsck string
	OuterFsck string
	Checked   int
	Lost      []string
	Problem   string
}

// Intact reports whether the point found nothing wrong.
func (p *Point) Intact() bool {
	return p.Problem == "" && p.Opened && p.InnerFsck == "clean" && p.OuterFsck == "clean" && len(p.Lost) == 0
}

func (p *Point) String() string {
	kind := "flush"
	if p.Random {
		kind = fmt.Sprintf("random (%d writes dropped)", p.Dropped)
	}
	s := fmt.Sprintf("entry %d, %s: %d ops done, opened %v, inner %s, outer %s, %d files checked", p.Entry, kind, p.Done, p.Opened, short(p.InnerFsck), short(p.OuterFsck), p.Checked)
	for _, l := range p.Lost {
		s += "; lost " + l
	}
	if p.Problem != "" {
		s += "; " + p.Problem
	}
	if p.InnerFsck != "clean" {
		s += "; inner fsck: " + p.InnerFsck
	}
	if p.OuterFsck != "clean" {
		s += "; outer fsck: " + p.OuterFsck
	}
	return s
}

// Replay checks rec at every flush point after the vault was made, and at
// random points between flushes (a share randomShare of the flush points get
// one). Points before the vault was complete are not checked: making a
// vault is not meant to survive a power cut.
func Replay(rec *Recording, dir string, randomShare float64, rng *rand.Rand) ([]*Point, error) {
	wl, err := ReadLog(rec.Log)
	if err != nil {
		return nil, err
	}
	defer wl.Close()
	// Where the markers are: progress at any point comes from them.
	setup := -1
	var begins, dones []int
	for i, e := range wl.Entries {
		m, ok := wl.Marker(e, diskSize)
		if !ok {
			continue
		}
		word, arg, _ := strings.Cut(m, " ")
		n, _ := strconv.Atoi(arg)
		switch word {
		case "setup-done":
			setup = i
		case "begin":
			if n == len(begins) {
				begins = append(begins, i)
			}
		case "done":
			if n == len(dones) {
				dones = append(dones, i)
			}
		}
	}
	if setup < 0 || len(dones) != rec.Ops {
		return nil, fmt.Errorf("%s: markers: setup at %d, %d of %d operations done", rec.Log, setup, len(dones), rec.Ops)
	}
	progress := func(p int) (done int, inflight bool) {
		for done < len(dones) && dones[done] < p {
			done++
		}
		return done, done < len(begins) && begins[done] < p
	}

	img := filepath.Join(dir, "replay.img")
	if err := createSparse(img, diskSize); err != nil {
		return nil, err
	}
	defer os.Remove(img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []*Point
	for i, e := range wl.Entries {
		if err := wl.Apply(e, f); err != nil {
			return points, fmt.Errorf("replaying entry %d: %w", i, err)
		}
		if !e.Flush() || i <= setup {
			continue
		}
		done, inflight := progress(i + 1)
		p := &Point{Entry: i + 1, Done: done, Inflight: inflight}
		checkImage(p, img, dir, rec)
		points = append(points, p)

		next := i + 1
		for next < len(wl.Entries) && !wl.Entries[next].Flush() {
			next++
		}
		if next-i < 2 || rng.Float64() >= randomShare {
			continue
		}
		// A random point before the next flush: a random half of the
		// writes since this flush reached the disk.
		end := i + 1 + rng.IntN(next-i-1) // entries i+1 ... end
		rnd := filepath.Join(dir, "random.img")
		if err := copySparse(img, rnd); err != nil {
			return points, err
		}
		rf, err := os.OpenFile(rnd, os.O_RDWR, 0)
		if err != nil {
			return points, err
		}
		done, inflight = progress(end + 1)
		rp := &Point{Entry: end + 1, Random: true, Done: done, Inflight: inflight}
		for j := i + 1; j <= end; j++ {
			if rng.IntN(2) == 0 {
				rp.Dropped++
				continue
			}
			if err := wl.Apply(wl.Entries[j], rf); err != nil {
				rf.Close()
				return points, err
			}
		}
		rf.Close()
		checkImage(rp, rnd, dir, rec)
		os.Remove(rnd)
		points = append(points, rp)
	}
	return points, nil
}

// checkImage checks a copy of a replayed disk image as the power-cut check
// does in the guest, with this machine's kernel: mount the outer ext4 (its
// journal replays), open the vault and write its plaintext to an image,
// fsck -n the outer ext4, mount the vault's filesystem (its journal
// replays), list the workload's files, fsck -n it.
func checkImage(p *Point, img, dir string, rec *Recording) {
	work := filepath.Join(dir, "point.img")
	plain := filepath.Join(dir, "plain.img")
	defer os.Remove(work)
	defer os.Remove(plain)
	if err := copySparse(img, work); err != nil {
		p.Problem = err.Error()
		return
	}
	outer, err := attachLoop(work)
	if err != nil {
		p.Problem = err.Error()
		return
	}
	defer detachLoop(outer)
	mnt := filepath.Join(dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "ext4", outer, mnt).CombinedOutput(); err != nil {
		p.Problem = fmt.Sprintf("outer ext4 does not mount: %v: %s", err, bytes.TrimSpace(out))
		return
	}
	err = decryptVault(filepath.Join(mnt, "vault.cv"), plain)
	if uerr := unmount(mnt); uerr != nil {
		p.Problem = uerr.Error()
		return
	}
	if err != nil {
		p.Problem = "the vault does not open: " + err.Error()
		return
	}
	p.Opened = true
	p.OuterFsck = fsckResult("ext4", outer)

	inner, err := attachLoop(plain)
	if err != nil {
		p.Problem = err.Error()
		return
	}
	defer detachLoop(inner)
	if out, err := exec.Command("mount", "-t", rec.FS, inner, mnt).CombinedOutput(); err != nil {
		p.Problem = fmt.Sprintf("the vault's %s does not mount: %v: %s", rec.FS, err, bytes.TrimSpace(out))
		return
	}
	lines, err := ListFiles(filepath.Join(mnt, "d"))
	if err != nil && !os.IsNotExist(err) {
		p.Problem = "listing: " + err.Error()
	}
	if err := unmount(mnt); err != nil {
		p.Problem = err.Error()
		return
	}
	p.InnerFsck = fsckResult(rec.FS, inner)
	p.Lost, p.Checked = Verdict(rec.Seed, p.Done, p.Inflight, ParseListing(lines))
}

// decryptVault writes the plaintext of the vault at path into a new image,
// leaving holes where the plaintext is zero.
func decryptVault(path, out string) error {
	v, err := container.Open(path, container.Passphrase([]byte("powercut")), &container.OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer v.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(v.Size()); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < v.Size(); off += int64(len(buf)) {
		n := min(int64(len(buf)), v.Size()-off)
		if _, err := v.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return fmt.Errorf("reading the vault at %d: %w", off, err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return f.Close()
}

// unmount unmounts dir, trying for a few seconds while it is busy; if it
// cannot, it detaches it lazily (so nothing stays behind) and says so.
func unmount(dir string) error {
	var out []byte
	var err error
	for range 50 {
		if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	exec.Command("umount", "-l", dir).Run()
	return fmt.Errorf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
}

func attachLoop(file string) (string, error) {
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", file, err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
}

func detachLoop(dev string) { exec.Command("losetup", "-d", dev).Run() }
