package vmtest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// The power-cut workload: a deterministic stream of file operations, each
// made durable (fsync of the file and, when names change, of the
// directory) before the next begins. The guest runs it and reports when each
// operation begins and when its fsyncs have returned; the host computes the
// same stream from the seed, so it knows what every file must hold after
// any operation.

// OpKind is what an operation does to its file.
type OpKind int

const (
	OpWrite    OpKind = iota // create or replace the contents
	OpAppend                 // add to the end (creating the file if needed)
	OpRename                 // write a temporary file, then rename it over the file
	OpTruncate               // shorten
	OpDelete                 // remove
)

func (k OpKind) String() string {
	return [...]string{"write", "append", "rename", "truncate", "delete"}[k]
}

// Op is one operation of the workload.
type Op struct {
	I    int
	Kind OpKind
	Name string // the file, in the workload directory
	Data []byte // what write, append and rename write
	Size int64  // the size truncate leaves
}

// Files is what the workload directory holds: name -> contents.
type Files map[string][]byte

const (
	workloadFiles   = 12       // f00 ... f11
	workloadMaxSize = 96 << 10 // appends stop growing a file past this
)

// NextOp returns operation i of the stream of seed, given the files as
// operations 0 ... i-1 left them.
func NextOp(seed uint64, i int, files Files) Op {
	rng := rand.New(rand.NewChaCha8(opSeed(seed, i)))
	op := Op{I: i, Name: fmt.Sprintf("f%02d", rng.IntN(workloadFiles))}
	cur, exists := files[op.Name]
	r := rng.IntN(100)
	switch {
	case !exists && r < 70:
		op.Kind = OpWrite
	case !exists:
		op.Kind = OpRename
	case r < 25:
		op.Kind = OpWrite
	case r < 55 && len(cur) < workloadMaxSize:
		op.Kind = OpAppend
	case r < 75:
		op.Kind = OpRename
	case r < 90:
		op.Kind = OpTruncate
		op.Size = int64(rng.IntN(len(cur) + 1))
	default:
		op.Kind = OpDelete
	}
	switch op.Kind {
	case OpWrite, OpRename:
		op.Data = randomBytes(rng, rng.IntN(64<<10))
	case OpAppend:
		op.Data = randomBytes(rng, 1+rng.IntN(16<<10))
	}
	return op
}

func opSeed(seed uint64, i int) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(i))
	copy(s[16:], "cryptvol-powercut")
	return s
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// Apply returns the files after op (files is not changed).
func (op Op) Apply(files Files) Files {
	out := make(Files, len(files)+1)
	for k, v := range files {
		out[k] = v
	}
	switch op.Kind {
	case OpWrite, OpRename:
		out[op.Name] = op.Data
	case OpAppend:
		out[op.Name] = append(slices.Clip(out[op.Name]), op.Data...)
	case OpTruncate:
		out[op.Name] = out[op.Name][:op.Size]
	case OpDelete:
		delete(out, op.Name)
	}
	return out
}

// Touches lists the names op may change while it runs: its file, and the
// temporary file of a rename.
func (op Op) Touches() []string {
	if op.Kind == OpRename {
		return []string{op.Name, tmpName(op.Name)}
	}
	return []string{op.Name}
}

func tmpName(name string) string { return name + ".tmp" }

// Do performs op in dir and makes it durable: the file is fsynced, and the
// directory too when an entry was made, replaced or removed.
func (op Op) Do(dir string) error {
	p := filepath.Join(dir, op.Name)
	var err error
	switch op.Kind {
	case OpWrite:
		err = writeDurably(p, op.Data, os.O_TRUNC)
	case OpAppend:
		err = writeDurably(p, op.Data, os.O_APPEND)
	case OpRename:
		if err = writeDurably(p+".tmp", op.Data, os.O_TRUNC); err == nil {
			err = os.Rename(p+".tmp", p)
		}
	case OpTruncate:
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			if err = f.Truncate(op.Size); err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	case OpDelete:
		err = os.Remove(p)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("op %d (%s %s): %w", op.I, op.Kind, op.Name, err)
	}
	return nil
}

func writeDurably(p string, data []byte, flag int) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}

// FileSum is how the guest reports a file: its size and SHA-256.
func FileSum(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("%d:%s", len(b), hex.EncodeToString(h[:8]))
}

// Verdict compares what a vault's workload directory holds (name -> FileSum)
// after a power cut with what the stream of seed must have left: done
// operations 0 ... done-1 have completed (their fsyncs returned); if
// inflight, operation done may have been running, and the files it touches
// may hold anything. It returns the files that are wrong, and how many
// files it checked.
func Verdict(seed uint64, done int, inflight bool, got map[string]string) (lost []string, checked int) {
	files := Files{}
	var next Op
	for i := 0; i <= done; i++ {
		op := NextOp(seed, i, files)
		if i == done {
			next = op
			break
		}
		files = op.Apply(files)
	}
	skip := map[string]bool{}
	if inflight {
		for _, n := range next.Touches() {
			skip[n] = true
		}
	}
	for name, want := range files {
		if skip[name] {
			continue
		}
		checked++
		if g, ok := got[name]; !ok {
			lost = append(lost, name+": missing")
		} else if g != FileSum(want) {
			lost = append(lost, fmt.Sprintf("%s: %s, want %s", name, g, FileSum(want)))
		}
	}
	for name := range got {
		if _, ok := files[name]; !ok && !skip[name] {
			lost = append(lost, name+": should not exist")
		}
	}
	slices.Sort(lost)
	return lost, checked
}

// ParseListing reads "name size:sha" lines (ListFiles' format).
func ParseListing(lines []string) map[string]string {
	got := map[string]string{}
	for _, l := range lines {
		if name, sum, ok := strings.Cut(l, " "); ok {
			got[name] = sum
		}
	}
	return got
}

// ListFiles returns "name size:sha" for each regular file in dir.
func ListFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, e.Name()+" "+FileSum(b))
	}
	return out, nil
}

// markerArea is the end of each power-cut disk, outside the outer
// filesystem: the workload writes its progress to the first sector there
// with O_DIRECT, so the write log (blklogwrites) records it in order with
// the writes it separates, as dm-log-writes marks do.
const markerArea = 1 << 20

// markerMagic begins every marker.
const markerMagic = "CVMARK "

// fsckResult runs a read-only check: "clean", or what was wrong.
func fsckResult(fs, dev string) string {
	var cmd *exec.Cmd
	if fs == "xfs" {
		cmd = exec.Command("xfs_repair", "-n", dev)
	} else {
		cmd = exec.Command("e2fsck", "-f", "-n", dev)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "unclean " + strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", " | ")
	}
	return "clean"
}
