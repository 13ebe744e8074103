package vmtest

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Initramfs collects the files of the guest's root filesystem and writes
// them as one uncompressed cpio archive ("newc" format, the one the kernel
// unpacks). Paths are absolute guest paths; parent directories are added as
// needed.
type Initramfs struct {
	entries map[string]cpioEntry
}

type cpioEntry struct {
	mode   uint32 // file type and permission bits, as in stat(2)
	host   string // regular file: copy this host file
	data   []byte // regular file: or these bytes
	target string // symlink
}

const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

// NewInitramfs returns an archive with the merged-/usr layout of Debian 12
// (/bin, /sbin, /lib and /lib64 point into /usr) and the usual mount points.
func NewInitramfs() *Initramfs {
	r := &Initramfs{entries: map[string]cpioEntry{}}
	for _, d := range []string{"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/proc", "/sys", "/dev", "/tmp", "/run", "/mnt", "/etc", "/root", "/var"} {
		r.AddDir(d)
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		r.AddSymlink("/"+l, "usr/"+l)
	}
	return r
}

// AddDir adds a directory and its parents.
func (r *Initramfs) AddDir(p string) {
	for p = path.Clean(p); p != "/" && p != "."; p = path.Dir(p) {
		if _, ok := r.entries[p]; ok {
			return
		}
		r.entries[p] = cpioEntry{mode: modeDir | 0o755}
	}
}

// AddData adds a regular file with the given contents.
func (r *Initramfs) AddData(p string, data []byte, perm os.FileMode) {
	r.AddDir(path.Dir(p))
	r.entries[path.Clean(p)] = cpioEntry{mode: modeRegular | uint32(perm.Perm()), data: data}
}

// AddFile adds a copy of a host file.
func (r *Initramfs) AddFile(p, host string, perm os.FileMode) {
	r.AddDir(path.Dir(p))
	r.entries[path.Clean(p)] = cpioEntry{mode: modeRegular | uint32(perm.Perm()), host: host}
}

// AddSymlink adds a symbolic link.
func (r *Initramfs) AddSymlink(p, target string) {
	r.AddDir(path.Dir(p))
	r.entries[path.Clean(p)] = cpioEntry{mode: modeSymlink | 0o777, target: target}
}

// Has reports whether the archive has an entry at p.
func (r *Initramfs) Has(p string) bool {
	_, ok := r.entries[path.Clean(p)]
	return ok
}

// AddHostPath adds a host file at the same path in the guest, following
// symbolic links (each link and its target are added) and, for a dynamically
// linked ELF program or library, its interpreter and libraries.
func (r *Initramfs) AddHostPath(hostPath string) error {
	return r.addHostPath(hostPath, map[string]bool{})
}

func (r *Initramfs) addHostPath(p string, seen map[string]bool) error {
	// Resolve the directories (e.g. /lib -> /usr/lib), not the file itself.
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return err
	}
	p = filepath.Join(dir, filepath.Base(p))
	if seen[p] {
		return nil
	}
	seen[p] = true
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		r.AddSymlink(p, target)
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		return r.addHostPath(target, seen)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	r.AddFile(p, p, st.Mode())
	libs, err := elfDependencies(p)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := r.addHostPath(l, seen); err != nil {
			return err
		}
	}
	return nil
}

// libraryDirs is where the dynamic linker of Debian 12 on amd64 looks.
var libraryDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"}

// elfDependencies returns the interpreter and the needed libraries of an ELF
// file as host paths, or nothing for a static or non-ELF file.
func elfDependencies(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, nil // a script or data file
	}
	defer f.Close()
	var deps []string
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return nil, fmt.Errorf("%s: interpreter: %w", p, err)
			}
			deps = append(deps, strings.TrimRight(string(b), "\x00"))
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, nil // no dynamic section: static
	}
	dirs := libraryDirs
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		paths, _ := f.DynString(tag)
		for _, rp := range paths {
			for _, d := range strings.Split(rp, ":") {
				dirs = append([]string{strings.ReplaceAll(d, "$ORIGIN", filepath.Dir(p))}, dirs...)
			}
		}
	}
	for _, lib := range needed {
		found := ""
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
				found = filepath.Join(d, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s needs %s, which is in none of %v", p, lib, dirs)
		}
		deps = append(deps, found)
	}
	return deps, nil
}

// WriteTo writes the archive, directories before what they hold.
func (r *Initramfs) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names) // a parent sorts before its children
	ino := uint32(1)
	for _, n := range names {
		e := r.entries[n]
		data := e.data
		switch {
		case e.mode&0o170000 == modeSymlink:
			data = []byte(e.target)
		case e.host != "":
			b, err := os.ReadFile(e.host)
			if err != nil {
				return cw.n, err
			}
			data = b
		}
		if err := writeCpioEntry(cw, strings.TrimPrefix(n, "/"), e.mode, ino, data); err != nil {
			return cw.n, err
		}
		ino++
	}
	if err := writeCpioEntry(cw, "TRAILER!!!", 0, 0, nil); err != nil {
		return cw.n, err
	}
	return cw.n, bw.Flush()
}

func writeCpioEntry(w *countWriter, name string, mode, ino uint32, data []byte) error {
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	io.WriteString(w, hdr)
	io.WriteString(w, name+"\x00")
	w.pad()
	w.Write(data)
	w.pad()
	return w.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// pad aligns the archive to 4 bytes, as newc requires after names and data.
func (c *countWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.Write(make([]byte, 4-r))
	}
}
