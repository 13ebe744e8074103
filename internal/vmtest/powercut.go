package vmtest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Power-cut trials: the guest runs the workload (workload.go) in a vault
// that lives on a virtio disk backed by a host file, the host kills qemu at
// a random moment, and the next boot checks that disk: the outer ext4 and
// the vault's filesystem replay their journals, fsck -n finds both clean,
// and every file whose last operation completed holds what it must. Each
// boot checks the previous trial's disk and then runs the next trial on a
// fresh copy of a template disk, so a trial costs one boot.

// Trial is the outcome of one power-cut trial.
type Trial struct {
	Via, FS    string
	Seed       uint64
	KilledAt   time.Duration // after the workload started
	Done       int           // operations completed before the cut
	Inflight   bool          // operation Done had begun
	Opened     bool          // the vault opened after the cut
	InnerFsck  string        // "clean" or what fsck said
	OuterFsck  string
	Checked    int      // files compared
	Lost       []string // files that are wrong
	Verified   bool     // the check ran to its end
	Problem    string   // anything else that went wrong
	Note       string   // what happened that is not the vault's doing
	diskPath   string
	checkLines []string
}

// Intact reports whether the trial found nothing wrong.
func (tr *Trial) Intact() bool {
	return tr.Problem == "" && tr.Opened && tr.InnerFsck == "clean" && tr.OuterFsck == "clean" && len(tr.Lost) == 0
}

// PowercutOptions configure a series of trials on one path.
type PowercutOptions struct {
	Via      string        // nbd or loop
	Trials   int           // alternately ext4 and xfs inside the vault
	FSOffset int           // 1: start with xfs
	Seed     uint64        // of the first trial; the next ones count up
	MaxDelay time.Duration // the cut comes uniformly within this after the workload starts
	Logf     func(string, ...any)
}

// diskSize is the size of each power-cut disk: the outer ext4 holds a
// sparse vault of up to 300 MiB (xfs needs that), and the last MiB is the
// marker area.
const diskSize = 400<<20 + markerArea

// Powercut runs the trials of o, one after the other, and returns them.
func (l *Lab) Powercut(o PowercutOptions) ([]*Trial, error) {
	var trials []*Trial
	var prev *Trial
	rng := rand.New(rand.NewPCG(o.Seed, 0x70c7))
	for k := 0; k <= o.Trials; k++ {
		var next *Trial
		if k < o.Trials {
			fs := []string{"ext4", "xfs"}[(k+o.FSOffset)%2]
			tmpl, err := l.template(fs)
			if err != nil {
				return trials, err
			}
			next = &Trial{Via: o.Via, FS: fs, Seed: o.Seed + uint64(k), diskPath: filepath.Join(l.dir, fmt.Sprintf("powercut-%s-%d.img", o.Via, k))}
			if err := copySparse(tmpl, next.diskPath); err != nil {
				return trials, err
			}
			next.KilledAt = time.Duration(rng.Int64N(int64(o.MaxDelay)))
			trials = append(trials, next)
		}
		failure, err := l.powercutBoot(o, prev, next)
		if err != nil {
			return trials, err
		}
		if failure != "" {
			// qemu or the guest kernel failed before the guest ran
			// anything: no disk was touched, so the boot is tried again,
			// and the trials say so.
			note := fmt.Sprintf("a boot failed before the guest ran (%s); tried again", failure)
			if prev != nil { // its check starts over; what its workload did stays
				prev.checkLines, prev.Note = nil, note
			}
			if next != nil {
				*next = Trial{Via: next.Via, FS: next.FS, Seed: next.Seed, KilledAt: next.KilledAt, diskPath: next.diskPath, Note: note}
			}
			if next != nil {
				tmpl, _ := l.template(next.FS)
				if err := copySparse(tmpl, next.diskPath); err != nil {
					return trials, err
				}
			}
			if failure, err = l.powercutBoot(o, prev, next); err != nil {
				return trials, err
			}
			if failure != "" {
				return trials, fmt.Errorf("a power-cut guest failed to boot twice: %s", failure)
			}
		}
		if prev != nil {
			os.Remove(prev.diskPath)
			if o.Logf != nil {
				o.Logf("%s", prev.Row())
			}
		}
		prev = next
	}
	return trials, nil
}

// powercutBoot checks prev's disk (if any), then runs next's workload (if
// any) and kills the guest next.KilledAt after it started.
// If the guest did not boot (its init never ran), it says why.
func (l *Lab) powercutBoot(o PowercutOptions, prev, next *Trial) (bootFailure string, err error) {
	env := map[string]string{"PC_VIA": o.Via}
	var disks []Disk
	if prev != nil {
		disks = append(disks, Disk{Path: prev.diskPath})
		env["PC_CHECK"] = "/dev/vda"
		env["PC_CHECK_FS"] = prev.FS
	}
	if next != nil {
		disks = append(disks, Disk{Path: next.diskPath})
		env["PC_WORK"] = fmt.Sprintf("/dev/vd%c", 'a'+len(disks)-1)
		env["PC_FS"] = next.FS
		env["PC_SEED"] = strconv.FormatUint(next.Seed, 10)
		env["PC_OPS"] = "0"
	}
	initrd, err := l.LeanInitrd()
	if err != nil {
		return "", err
	}
	console := filepath.Join(l.dir, "console-"+o.Via+".log")
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: initrd, Job: "powercut", Env: env, Disks: disks, CPUs: 1, Memory: 1024,
		Console: console})
	if err != nil {
		return "", err
	}
	booted := false
	defer vm.Kill()
	bootStart := time.Now()
	var cut <-chan time.Time
	var started time.Time
	timeout := time.After(10 * time.Minute)
	checked := false
	var recent []string
	for {
		select {
		case line, ok := <-vm.Lines:
			if !ok {
				qerr := vm.Wait(time.Minute)
				if !booted {
					return fmt.Sprintf("qemu: %v; console: %s", qerr, strings.ReplaceAll(tail(console, 8), "\n", " | ")), nil
				}
				if prev != nil && !checked {
					prev.Problem = "the check did not finish: " + lastLines(recent)
				}
				if next != nil {
					next.Problem = "the guest stopped before the cut: " + lastLines(recent)
				}
				return "", nil
			}
			if strings.HasPrefix(line, "LAB-BOOTED") {
				booted = true
			}
			recent = append(recent, line)
			if os.Getenv("CRYPTVOL_LAB_DEBUG") != "" && (strings.HasPrefix(line, "LAB-") || strings.HasPrefix(line, "PC checked") || strings.HasPrefix(line, "PC ready")) {
				o.Logf("%v %s", time.Since(bootStart).Round(10*time.Millisecond), line)
			}
			msg, ok := strings.CutPrefix(line, "PC ")
			if !ok {
				continue
			}
			word, rest, _ := strings.Cut(msg, " ")
			switch {
			case word == "checked":
				checked = true
				prev.finishCheck()
			case prev != nil && !checked:
				prev.checkLines = append(prev.checkLines, msg)
			case word == "ready":
				started = time.Now()
				cut = time.After(next.KilledAt)
			case word == "begin":
				next.Inflight = true
				next.Done, _ = strconv.Atoi(rest)
			case word == "done":
				next.Inflight = false
				n, _ := strconv.Atoi(rest)
				next.Done = n + 1
			case word == "error":
				next.Problem = rest
			}
		case <-cut:
			vm.Cut()
			next.KilledAt = time.Since(started).Round(time.Millisecond)
			// Lines the guest sent before the cut are in the pipe still.
			for line := range vm.Lines {
				msg, _ := strings.CutPrefix(line, "PC ")
				word, rest, _ := strings.Cut(msg, " ")
				switch word {
				case "begin":
					next.Inflight = true
					next.Done, _ = strconv.Atoi(rest)
				case "done":
					next.Inflight = false
					n, _ := strconv.Atoi(rest)
					next.Done = n + 1
				}
			}
			if prev != nil && !checked {
				prev.Problem = "the check did not finish"
			}
			return "", nil
		case <-timeout:
			return "", errors.New("a power-cut guest did not finish within 10 minutes")
		}
	}
}

// finishCheck judges a trial from its check's report.
func (tr *Trial) finishCheck() {
	var files []string
	tr.Verified, tr.Opened = true, true
	for _, l := range tr.checkLines {
		word, rest, _ := strings.Cut(l, " ")
		switch word {
		case "file":
			files = append(files, rest)
		case "inner-fsck":
			tr.InnerFsck = rest
		case "outer-fsck":
			tr.OuterFsck = rest
		case "open-failed", "outer-mount-failed":
			tr.Opened = false
			tr.Problem = l
		case "inner-mount-failed", "list-failed", "error":
			tr.Problem = l
		}
	}
	tr.Lost, tr.Checked = Verdict(tr.Seed, tr.Done, tr.Inflight, ParseListing(files))
}

func lastLines(lines []string) string {
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Row is the trial's line in the table TrialTable prints.
func (tr *Trial) Row() string {
	verdict := "intact"
	if !tr.Intact() {
		verdict = "FAILED"
	}
	inflight := ""
	if tr.Inflight {
		inflight = "+1"
	}
	s := fmt.Sprintf("%-5s %-5s %20d %8v %5d%-2s %-6v %-6s %-6s %5d  %s",
		tr.Via, tr.FS, tr.Seed, tr.KilledAt.Round(10*time.Millisecond), tr.Done, inflight, tr.Opened, short(tr.InnerFsck), short(tr.OuterFsck), tr.Checked, verdict)
	for _, l := range tr.Lost {
		s += "\n      lost " + l
	}
	if tr.Problem != "" {
		s += "\n      " + tr.Problem
	}
	if tr.Note != "" {
		s += "\n      note: " + tr.Note
	}
	if !tr.Intact() && tr.InnerFsck != "clean" {
		s += "\n      inner fsck: " + tr.InnerFsck
	}
	if !tr.Intact() && tr.OuterFsck != "clean" {
		s += "\n      outer fsck: " + tr.OuterFsck
	}
	return s
}

// TrialHeader is the header line of Row.
const TrialHeader = "path  fs                    seed   cut at   ops  opened inner  outer  files  verdict"

func short(fsck string) string {
	if fsck == "clean" || fsck == "" {
		return fsck
	}
	return "UNCLEAN"
}

// template returns a disk formatted for the power-cut trials of fs, made by
// a guest the first time.
func (l *Lab) template(fs string) (string, error) {
	l.tmplMu.Lock()
	defer l.tmplMu.Unlock()
	p := filepath.Join(l.dir, "template-"+fs+".img")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	initrd, err := l.LeanInitrd()
	if err != nil {
		return "", err
	}
	tmp := p + ".new"
	if err := createSparse(tmp, diskSize); err != nil {
		return "", err
	}
	vm, err := Boot(BootOptions{Kernel: l.Kernel, Initrd: initrd, Job: "powercut", Disks: []Disk{{Path: tmp}},
		Env: map[string]string{"PC_SETUP": "/dev/vda", "PC_FS": fs, "PC_VIA": "loop"}, CPUs: 1, Memory: 1024})
	if err != nil {
		return "", err
	}
	defer vm.Kill()
	out, err := vm.Collect(10*time.Minute, nil)
	if err != nil || !slices.Contains(out, "PC setup-done") {
		return "", fmt.Errorf("making the %s template disk failed (%v):\n%s", fs, err, strings.Join(out, "\n"))
	}
	return p, os.Rename(tmp, p)
}

func createSparse(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copySparse copies a file, keeping its holes.
func copySparse(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	for off := int64(0); off < st.Size(); {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break // no data after off
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return out.Close()
}
