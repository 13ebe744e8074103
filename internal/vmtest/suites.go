package vmtest

// Suite is a set of tests run in one guest boot: the tests of Pkg (a
// package directory relative to the module root) matching Run, then those
// matching each pattern of More (a -test.run pattern applies to every
// level, so tests whose subtests are picked differently need patterns of
// their own), with the package directory as working directory,
// CRYPTVOL_E2E=require and CRYPTVOL_LAB=guest. The guest has every module
// of guestModules loaded except nbd when Loop is set: then `open --via
// auto` takes the loop path.
type Suite struct {
	Name    string
	Pkg     string
	Run     string
	More    []string
	Loop    bool
	Full    bool // only in the full run (scripts/kernel-lab), not in ./scripts/test
	Minutes int  // the guest's time limit
}

// Suites is what the lab runs, in one place: when a test moves to another
// package, change its Pkg here.
var Suites = []Suite{
	// The kernel NBD client attached to our server, bare.
	{Name: "nbd-attach", Pkg: "mount/nbd", Run: "^TestNBDKernelAttach$", Minutes: 5},
	// The end-to-end scripts of the mounted filesystem through /dev/nbdN
	// (the default where the nbd module is loaded): the kernel NBD script,
	// every filesystem with vfat mounted for real, a killed server, fsync
	// durability, a full disk under the vault, growing. The loop path runs
	// them on the host.
	{Name: "e2e-nbd", Pkg: "cmd/cryptvol", Run: "^TestE2E$/^(nbd_kernel|filesystems|roundtrip_ext4|readonly_wrongpass|busy_kill|durability|diskfull|resize)$", Minutes: 15},
	// vfat mounted for real through a loop device.
	{Name: "e2e-loop", Pkg: "cmd/cryptvol", Run: "^TestE2E$/^(filesystems)$", Loop: true, Minutes: 10},
	// docs/FORMAT.md §6: dm-crypt reads what cryptvol wrote.
	{Name: "dmcrypt", Pkg: "internal/vmtest", Run: "^TestGuestDMCryptRecipe$", Loop: true, Minutes: 5},
	// LUKS and VeraCrypt volumes against cryptsetup and dm-crypt
	// (docs/LUKS.md, docs/VERACRYPT.md), in one boot: each tool reads what
	// the other made and wrote. Here one case of each kind (4096-byte
	// sectors, ext4 through cryptvol's nbd and loop paths, Serpent, Twofish
	// and Camellia written by cryptvol, LUKS1's aes-cbc-essiv:sha256
	// re-keyed by cryptvol); cryptsetup opens the VeraCrypt volumes
	// cryptvol makes and re-keys (the cascades with a small PIM). The full
	// run has every case of TestGuestLUKS: both sector sizes and both
	// directions for each cipher and LUKS1 cipher.
	{Name: "formats", Pkg: "internal/vmtest", Run: "^TestGuestLUKS$/^(" + luksCI + ")$",
		More: []string{"^TestGuestVeraCryptCryptsetup$/^(Serpent|Camellia|Twofish)"}, Minutes: 10},
	{Name: "formats-all", Pkg: "internal/vmtest", Run: "^TestGuestLUKS$", Full: true, Minutes: 15},
	// In the full run, VeraCrypt's AES with its default SHA-512 count
	// (500000 iterations, about six minutes under TCG).
	{Name: "veracrypt-default", Pkg: "internal/vmtest", Run: "^TestGuestVeraCryptCryptsetup$/^AES-sha512$", Loop: true, Full: true, Minutes: 15},
	// The VeraCrypt scripts with vfat mounted for real, through NBD.
	{Name: "veracrypt-e2e", Pkg: "cmd/cryptvol", Run: "^TestE2E$/^(veracrypt|veracrypt_images)$", Full: true, Minutes: 40},
	// Every end-to-end script, through each path.
	{Name: "e2e-all-nbd", Pkg: "cmd/cryptvol", Run: "^TestE2E$", Full: true, Minutes: 40},
	{Name: "e2e-all-loop", Pkg: "cmd/cryptvol", Run: "^TestE2E$", Loop: true, Full: true, Minutes: 40},
}

// luksCI are the subtests of TestGuestLUKS the short run takes.
const luksCI = "cryptvol-made-4096|cryptsetup-made-ext4-4096|serpent-cryptvol-made|twofish-cryptvol-made|camellia-cryptvol-made|luks1-aes-cbc-essiv-sha256"

// guestTools are the host programs copied into the guest, with the
// libraries they link. The guest's other commands are busybox applets; a
// tool missing on the host is left out (the test needing it then says so).
var guestTools = []string{
	"dash",
	"mke2fs", "mkfs.ext4", "e2fsck", "fsck.ext4", "debugfs", "resize2fs",
	"mkfs.xfs", "xfs_repair", "xfs_growfs", "xfs_db",
	"mkfs.btrfs", "btrfs", "btrfsck",
	"mkfs.vfat", "mkfs.fat", "fsck.vfat", "fsck.fat",
	"blkid", "findmnt", "losetup", "mount", "umount", "fsck", "setpriv", "wipefs", "blockdev",
	"df", "stat", "dd", // the scripts use GNU options
	"nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "fio",
	"dmsetup", "cryptsetup",
	"tar", "xz", // the VeraCrypt images are unpacked in the guest
}

// leanTools are the guest tools of the power-cut tests.
var leanTools = []string{"dash", "mke2fs", "mkfs.ext4", "e2fsck", "mkfs.xfs", "xfs_repair", "blkid", "mount", "umount", "losetup"}

// leanSkipsModules are the modules the power-cut guests do without: loading
// btrfs alone takes seconds under TCG (raid6_pq and xor time their
// algorithms), and those guests boot many times.
var leanSkipsModules = []string{
	"btrfs", "raid6_pq", "xor", "zstd_compress", "blake2b_generic", "xxhash_generic",
	"vfat", "fat", "nls_cp437", "nls_ascii", "nls_utf8",
	"dm_crypt", "dm_mod", "aesni_intel", "crypto_simd", "cryptd", "xts", "aes_generic", "ecb", "cbc", "essiv", "authenc",
	"serpent_generic", "serpent_sse2_x86_64", "serpent_avx_x86_64", "serpent_avx2",
	"twofish_generic", "twofish_common", "twofish_x86_64", "twofish_x86_64_3way", "twofish_avx_x86_64",
	"camellia_generic", "camellia_x86_64", "camellia_aesni_avx_x86_64", "camellia_aesni_avx2",
	"af_alg", "algif_skcipher", "algif_hash",
}
