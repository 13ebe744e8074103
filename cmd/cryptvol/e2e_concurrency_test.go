package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// overlap-writes URI REGION WRITERS WRITES: zero the first REGION bytes of
// the NBD export, then run WRITERS qemu-io processes at once (one connection
// each), each doing WRITES writes of a byte pattern of its own (unique across
// all writes) at random, overlapping offsets and lengths (4 KiB to 64 KiB,
// in 4 KiB sectors: clients align to the block size the server advertises,
// and a partial sector from two independent clients would be their own
// read-modify-write race) in that region; then read the region back and
// check every sector: it must be whole (one pattern) and hold the pattern of
// one of the writes that covered it (a lost, torn or misplaced write shows
// as a sector from no such write), or still zero if none covered it.
func cmdOverlapWrites(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: overlap-writes URI REGION WRITERS WRITES")
	}
	uri := args[0]
	region, err1 := strconv.Atoi(args[1])
	writers, err2 := strconv.Atoi(args[2])
	writes, err3 := strconv.Atoi(args[3])
	if err1 != nil || err2 != nil || err3 != nil || writers*writes > 255 || region < 1<<16 {
		ts.Fatalf("overlap-writes: bad arguments (at most 255 writes in all, a region of at least 64 KiB)")
	}
	if region%4096 != 0 {
		ts.Fatalf("overlap-writes: the region must be whole sectors")
	}
	qemuIO := func(cmds []string) error {
		args := []string{"-f", "raw"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		out, err := exec.Command("qemu-io", append(args, uri)...).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("error")) || bytes.Contains(out, []byte("failed")) {
			return fmt.Errorf("qemu-io: %v: %s", err, out)
		}
		return nil
	}
	ts.Check(qemuIO([]string{fmt.Sprintf("write -z 0 %d", region)}))

	const sector = 4096
	type write struct{ off, n, pattern int }
	rnd := func(n int) int {
		v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
		return int(v.Int64())
	}
	plans := make([][]write, writers)
	pattern := 1
	for w := range plans {
		for range writes {
			n := (1 + rnd(16)) * sector
			plans[w] = append(plans[w], write{off: rnd((region-n)/sector+1) * sector, n: n, pattern: pattern})
			pattern++
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w, plan := range plans {
		wg.Go(func() {
			var cmds []string
			for _, x := range plan {
				cmds = append(cmds, fmt.Sprintf("write -P %d %d %d", x.pattern, x.off, x.n))
			}
			errs[w] = qemuIO(cmds)
		})
	}
	wg.Wait()
	for _, err := range errs {
		ts.Check(err)
	}

	out := ts.MkAbs("overlap.bin")
	ts.Check(exec.Command("nbdcopy", uri, out).Run())
	got, err := os.ReadFile(out)
	ts.Check(err)
	covering := make([][]byte, region) // the patterns that covered each byte
	for _, plan := range plans {
		for _, x := range plan {
			for i := x.off; i < x.off+x.n; i++ {
				covering[i] = append(covering[i], byte(x.pattern))
			}
		}
	}
	bad := 0
	var first []string
	for i := range region {
		ok := got[i] == 0 && covering[i] == nil || bytes.IndexByte(covering[i], got[i]) >= 0
		ok = ok && got[i] == got[i/sector*sector] // a sector is one write's
		if !ok {
			bad++
			if len(first) < 5 {
				first = append(first, fmt.Sprintf("byte %d is %d, written by %v", i, got[i], covering[i]))
			}
		}
	}
	if bad > 0 {
		ts.Fatalf("%d bytes hold a value no write put there: %s", bad, strings.Join(first, "; "))
	}
	ts.Logf("%d writers × %d overlapping writes over %d bytes: every sector holds one of its writes, whole", writers, writes, region)
}
