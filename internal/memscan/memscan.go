//go:build linux

// Package memscan searches the memory of the process it runs in for a
// secret, for tests that check where keys are left: every readable mapping
// that is not locked (VmFlags "lo" in /proc/self/smaps), read through
// /proc/self/mem. Locked mappings are skipped: they never reach swap, and the
// needle and the scan buffer live in them.
package memscan

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/awnumar/memguard"
)

// Hit is one place the needle was found.
type Hit struct {
	Addr    uintptr
	Mapping string // its line in /proc/self/maps
}

func (h Hit) String() string { return fmt.Sprintf("%#x in %s", h.Addr, h.Mapping) }

type mapping struct {
	start, end uintptr
	line       string
	readable   bool
	locked     bool
}

// Find returns every place outside locked memory where needle occurs. needle
// should itself be in locked memory (a memguard buffer), or Find finds it.
func Find(needle []byte) ([]Hit, error) {
	if len(needle) == 0 {
		return nil, fmt.Errorf("memscan: empty needle")
	}
	maps, err := mappings()
	if err != nil {
		return nil, err
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	const chunk = 1 << 20
	scratch := memguard.NewBuffer(chunk + len(needle))
	defer scratch.Destroy()
	buf := scratch.Bytes()
	var hits []Hit
	for _, m := range maps {
		if !m.readable || m.locked || strings.HasSuffix(m.line, "[vvar]") || strings.HasSuffix(m.line, "[vsyscall]") || strings.HasSuffix(m.line, "[vvar_vclock]") {
			continue
		}
		for off := m.start; off < m.end; off += chunk {
			n := min(uintptr(len(buf)), m.end-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if err != nil && got == 0 {
				break // an unreadable range (a guard page)
			}
			b := buf[:got]
			for i := 0; ; {
				j := bytes.Index(b[i:], needle)
				if j < 0 {
					break
				}
				if at := i + j; at < chunk || off+chunk >= m.end {
					hits = append(hits, Hit{Addr: off + uintptr(at), Mapping: m.line})
				}
				i += j + 1
			}
		}
	}
	clear(buf)
	return hits, nil
}

// mappings reads /proc/self/smaps: each mapping, whether it is readable and
// whether it is locked.
func mappings() ([]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			lo, hi, _ := strings.Cut(fields[0], "-")
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			out = append(out, mapping{start: uintptr(s), end: uintptr(e), line: line, readable: fields[1][0] == 'r'})
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && len(out) > 0 {
			out[len(out)-1].locked = strings.Contains(" "+v+" ", " lo ")
		}
	}
	return out, sc.Err()
}
