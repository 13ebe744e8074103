package vmtest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// guestModules are the kernel modules the guest loads, in this order, each
// after the modules it depends on (modules.dep). Soft dependencies that
// modprobe would not pull in either are listed by hand: ext4, xfs and btrfs
// need a crc32c implementation (crc32c_generic), btrfs also blake2b and
// xxhash, and vfat mounts fail with EINVAL without its default code page
// (cp437) and character set (ascii in Debian's kernel configuration).
var guestModules = []string{
	"virtio_pci", "virtio_blk",
	"crc32c_generic", "blake2b_generic", "xxhash_generic", "aes_generic",
	"loop", "nbd", "fuse",
	"ext4", "xfs", "btrfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8",
	"aesni_intel", "xts", "dm_crypt",
	// The other ciphers of LUKS and VeraCrypt volumes, generic and x86
	// versions (the kernel picks the fastest the CPU runs), the ecb
	// template xts needs over the generic ones and the cbc and essiv ones
	// of LUKS1's aes-cbc-essiv:sha256 (there is no modprobe to load them
	// on demand), and the AF_ALG sockets cryptsetup decrypts VeraCrypt
	// headers through.
	"ecb", "cbc", "essiv",
	"serpent_generic", "serpent_sse2_x86_64", "serpent_avx_x86_64", "serpent_avx2",
	"twofish_generic", "twofish_x86_64", "twofish_x86_64_3way", "twofish_avx_x86_64",
	"camellia_generic", "camellia_x86_64", "camellia_aesni_avx_x86_64", "camellia_aesni_avx2",
	"af_alg", "algif_skcipher", "algif_hash",
}

// debianKernelPackage and debianBusyboxPackage are what the guest is made of.
const (
	debianKernelPackage  = "linux-image-amd64"
	debianBusyboxPackage = "busybox-static"
)

// CacheDir is where guest kernels are kept between runs: one directory per
// pair of package versions. CRYPTVOL_LAB_CACHE overrides it.
func CacheDir() string {
	if d := os.Getenv("CRYPTVOL_LAB_CACHE"); d != "" {
		return d
	}
	return "/var/cache/cryptvol-lab"
}

// Kernel is an unpacked guest kernel with the modules the lab loads.
type Kernel struct {
	Dir     string   `json:"-"`       // the cache entry
	Release string   `json:"release"` // uname -r of the guest, e.g. 6.1.0-57-amd64
	Key     string   `json:"key"`     // package names and versions it was made from
	Modules []string `json:"modules"` // module files under Dir/modules, in load order
}

// Vmlinuz is the kernel image to boot.
func (k *Kernel) Vmlinuz() string { return filepath.Join(k.Dir, "vmlinuz") }

// Busybox is the static busybox the initramfs runs.
func (k *Kernel) Busybox() string { return filepath.Join(k.Dir, "busybox") }

// PrepareKernel returns the cached guest kernel for the packages apt would
// install now, downloading and unpacking them the first time. Without apt
// package lists it falls back to the newest cache entry there is.
func PrepareKernel(logf func(string, ...any)) (*Kernel, error) {
	key, pkgs, err := packageKey()
	if err != nil {
		if k, ferr := newestCached(); ferr == nil {
			logf("lab: %v; using the cached guest %s", err, k.Key)
			return k, nil
		}
		return nil, err
	}
	dir := filepath.Join(CacheDir(), key)
	if k, err := loadKernel(dir); err == nil {
		return k, nil
	}
	logf("lab: building the guest kernel %s in %s", key, dir)
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab cache: %w", err)
	}
	tmp, err := os.MkdirTemp(CacheDir(), ".build-")
	if err != nil {
		return nil, fmt.Errorf("lab cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	k, err := buildKernel(tmp, key, pkgs)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(tmp, "root")); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run built the same entry meanwhile: use it.
		if k, lerr := loadKernel(dir); lerr == nil {
			return k, nil
		}
		return nil, fmt.Errorf("lab cache: %w", err)
	}
	k.Dir = dir
	return k, nil
}

// packageKey names the cache entry for the kernel and busybox packages apt
// offers now: the concrete kernel package (the metapackage depends on it) and
// both versions.
func packageKey() (string, []string, error) {
	out, err := exec.Command("apt-cache", "depends", debianKernelPackage).Output()
	if err != nil {
		return "", nil, fmt.Errorf("apt-cache depends %s: %w", debianKernelPackage, err)
	}
	kernelPkg := ""
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Depends: linux-image-"); ok && strings.HasSuffix(p, "-amd64") {
			kernelPkg = "linux-image-" + p
		}
	}
	if kernelPkg == "" {
		return "", nil, fmt.Errorf("apt-cache knows no package behind %s (run apt-get update)", debianKernelPackage)
	}
	var parts []string
	pkgs := []string{kernelPkg, debianBusyboxPackage}
	for _, p := range pkgs {
		v, err := candidateVersion(p)
		if err != nil {
			return "", nil, err
		}
		parts = append(parts, p+"_"+strings.ReplaceAll(v, ":", "%3a"))
	}
	// The module list is part of the key: a new module needs a new entry.
	sum := sha256.Sum256([]byte(strings.Join(guestModules, " ")))
	parts = append(parts, "modules-"+hex.EncodeToString(sum[:4]))
	return strings.Join(parts, "+"), pkgs, nil
}

func candidateVersion(pkg string) (string, error) {
	out, err := exec.Command("apt-cache", "policy", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache policy %s: %w", pkg, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate: "); ok && v != "(none)" {
			return v, nil
		}
	}
	return "", fmt.Errorf("apt offers no version of %s (run apt-get update)", pkg)
}

func loadKernel(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	k.Dir = dir
	return &k, nil
}

func newestCached() (*Kernel, error) {
	entries, _ := filepath.Glob(filepath.Join(CacheDir(), "*", "kernel.json"))
	var newest *Kernel
	var newestTime int64
	for _, e := range entries {
		st, err := os.Stat(e)
		if err != nil {
			continue
		}
		if k, err := loadKernel(filepath.Dir(e)); err == nil && st.ModTime().UnixNano() > newestTime {
			newest, newestTime = k, st.ModTime().UnixNano()
		}
	}
	if newest == nil {
		return nil, errors.New("no guest kernel in the lab cache")
	}
	return newest, nil
}

// buildKernel downloads and unpacks the packages into dir/root, runs depmod
// there, and keeps what the guest needs: vmlinuz, busybox and the modules.
func buildKernel(dir, key string, pkgs []string) (*Kernel, error) {
	dl := exec.Command("apt-get", append([]string{"download", "-q"}, pkgs...)...)
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != len(pkgs) {
		return nil, fmt.Errorf("apt-get download left %d packages, want %d", len(debs), len(pkgs))
	}
	root := filepath.Join(dir, "root")
	for _, d := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", d, root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", d, err, out)
		}
		os.Remove(d)
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, fmt.Errorf("%s has %d kernels, want 1", pkgs[0], len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	if out, err := exec.Command("depmod", "-b", root, release).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("depmod -b: %w\n%s", err, out)
	}
	modRoot := filepath.Join(root, "lib", "modules", release)
	order, err := moduleOrder(filepath.Join(modRoot, "modules.dep"), guestModules)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Release: release, Key: key, Modules: order}
	copies := map[string]string{vmlinuz[0]: filepath.Join(dir, "vmlinuz"), filepath.Join(root, "bin", "busybox"): filepath.Join(dir, "busybox")}
	for _, m := range order {
		copies[filepath.Join(modRoot, m)] = filepath.Join(dir, "modules", m)
	}
	for from, to := range copies {
		if err := copyFile(from, to); err != nil {
			return nil, err
		}
	}
	b, _ := json.MarshalIndent(k, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "kernel.json"), b, 0o644); err != nil {
		return nil, err
	}
	return k, nil
}

// moduleOrder resolves the wanted modules (by name; - and _ are the same)
// with modules.dep into module paths, dependencies first. A wanted module
// that is built into the kernel is not in modules.dep and is left out; one
// that is neither is an error.
func moduleOrder(depFile string, want []string) ([]string, error) {
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // path -> dependency paths
	byName := map[string]string{} // name -> path
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		path, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[path] = strings.Fields(rest)
		byName[moduleName(path)] = path
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(filepath.Dir(depFile), "modules.builtin"))
	builtins := map[string]bool{}
	for _, l := range strings.Fields(string(builtin)) {
		builtins[moduleName(l)] = true
	}
	var order []string
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		// Each dependency, with its own dependencies, before the module.
		for _, d := range deps[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, name := range want {
		n := strings.ReplaceAll(name, "-", "_")
		p, ok := byName[n]
		if !ok {
			if builtins[n] {
				continue
			}
			return nil, fmt.Errorf("kernel module %s: neither in modules.dep nor built in", name)
		}
		visit(p)
	}
	return order, nil
}

// moduleName is the module name of a path in modules.dep or modules.builtin.
func moduleName(path string) string {
	n := filepath.Base(path)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
