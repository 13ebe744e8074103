package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/cipher"
	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/tcrypt"
)

func newCreateCommand(u *ui) *cobra.Command {
	var (
		size, fill, filesystem string
		from                   string
		sectorSize             int
		force                  bool
		kf                     kdfFlags
		pf                     secretFlags
		tf                     typeFlag
		encryption, prf        string
		pim                    int
	)
	c := &cobra.Command{
		Use:   "create FILE --size SIZE",
		Short: "Create a new vault",
		Long: `Create a new vault file of SIZE usable bytes (K, M, G, T: powers of 1024). The
file is SIZE + 1 MiB + 4 KiB long. You are asked for a passphrase twice.

The file is sparse unless --fill random, which writes encrypted random data over
the whole vault (slower, but hides how much of it is in use).

With --from IMAGE the vault holds a copy of an existing raw disk image or block
device, encrypted sector by sector; its size is the image's (rounded up to the
sector size, padded with zeros). 'cryptvol export' does the reverse.

With --type luks2 the vault is a LUKS2 volume, as 'cryptsetup luksFormat' makes
with cryptsetup 2.6's defaults (aes-xts-plain64, 512-bit key, 16 MiB of header,
4096-byte sectors), which cryptsetup and dm-crypt open too (docs/LUKS.md); the
file is SIZE + 16 MiB long, and a --keyfile alone is its secret, as cryptsetup
takes it.

With --type veracrypt the file is a VeraCrypt volume that VeraCrypt 1.26 (and
cryptsetup) opens: SIZE + 256 KiB long, --encryption AES or a cascade such as
Serpent-Twofish-AES, the header key derived with --prf sha512 (default) or
argon2id and --pim; the filesystem is made inside as for a vault.

The key derivation (Argon2id) is calibrated so that unlocking takes --kdf-time on
this machine, with --kdf-memory of memory; or give --kdf-iterations (and
optionally --kdf-memory and --kdf-threads) to set it exactly.`,
		Example: `  cryptvol create vault.cv --size 10G
  cryptvol create vault.cv --size 512M --fill random --kdf-time 5s
  cryptvol create vault.cv --from disk.img
  cryptvol create volume.luks --size 1G --type luks2
  cryptvol create --type veracrypt volume.hc --size 1G --encryption AES-Twofish-Serpent`,
		Args: exactArgs(1, "one vault file"),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			ctype, err := tf.get()
			if err != nil {
				return err
			}
			if ctype == "" {
				ctype = container.TypeCryptvol
			}
			vc := ctype == container.TypeVeraCrypt
			if vc {
				for _, name := range []string{"sector-size", "kdf-time", "kdf-memory", "kdf-iterations", "kdf-threads"} {
					if c.Flags().Changed(name) {
						return &usageError{fmt.Sprintf("--%s is for cryptvol vaults: a VeraCrypt volume has 512-byte units and --prf and --pim for its key derivation", name)}
					}
				}
				sectorSize = 512
				if prf, err = checkPRF("--prf", prf); err != nil {
					return err
				}
				if _, err := cipher.VeraCryptSpec(encryption); err != nil {
					return &usageError{fmt.Sprintf("--encryption %q: one of %s", encryption, strings.Join(cipher.VeraCryptAlgorithms(), ", "))}
				}
				if pim < 0 || pim > tcrypt.MaxPIM {
					return &usageError{fmt.Sprintf("--pim %d: must be 0 to %d", pim, tcrypt.MaxPIM)}
				}
			} else {
				for _, name := range []string{"encryption", "prf", "pim"} {
					if c.Flags().Changed(name) {
						return &usageError{fmt.Sprintf("--%s is for VeraCrypt volumes: add --type veracrypt", name)}
					}
				}
			}
			if sectorSize != 512 && sectorSize != 4096 {
				return &usageError{fmt.Sprintf("--sector-size %d: must be 4096 or 512", sectorSize)}
			}
			if pf.header != "" || pf.keyfileOffset != 0 || pf.keyfileSize != 0 {
				return &usageError{"create takes no --header, --keyfile-offset or --keyfile-size"}
			}
			var n int64
			var src *os.File
			if from != "" {
				if c.Flags().Changed("size") || c.Flags().Changed("filesystem") || c.Flags().Changed("fill") {
					return &usageError{"--from takes the size and the filesystem from the image: drop --size, --filesystem and --fill"}
				}
				var err error
				if src, n, err = container.OpenImage(from, sectorSize); err != nil {
					return err
				}
				defer src.Close()
				filesystem = "none"
			} else {
				if size == "" {
					return &usageError{"--size is required"}
				}
				var err error
				if n, err = parseSize(size); err != nil {
					return &usageError{"--size: " + err.Error()}
				}
				if n == 0 || n%int64(sectorSize) != 0 {
					return &usageError{fmt.Sprintf("--size %s: must be a positive multiple of the sector size (%d)", size, sectorSize)}
				}
			}
			f, err := parseFill(fill)
			if err != nil {
				return err
			}
			format, err := formatter(filesystem, n)
			if err != nil {
				return err
			}
			if src != nil {
				format = func(vol *container.Volume) error {
					progress, finish := u.progress("importing " + from)
					defer finish()
					return vol.Import(c.Context(), src, progress)
				}
			}
			if err := checkTarget(path, force); err != nil {
				return err
			}
			if vc {
				return createVeraCrypt(c, u, path, &pf, &container.VeraCryptOptions{Size: n, Algorithm: encryption, PRF: prf, PIM: pim,
					Fill: f, Force: force, Format: format}, filesystem, from)
			}
			params, err := kf.params(c)
			if err != nil {
				return err
			}
			var pass container.Secret
			if ctype == container.TypeLUKS2 && len(pf.keyfiles) > 0 && pf.file == "" {
				pass = container.Secret{Keyfiles: pf.keyfiles, SpecialKeyfiles: pf.specialKeyfiles} // a LUKS keyfile is the whole secret
				if err := checkKeyfiles(pass); err != nil {
					return err
				}
			} else if pass, err = u.newSecret(&pf, pf.file, pf.keyfiles, "Enter a passphrase for the new vault "+path); err != nil {
				return err
			}
			defer wipeSecret(pass)
			progress, finish := u.progress("filling with random data")
			vol, err := container.Create(c.Context(), path, pass, &container.CreateOptions{
				Size: n, SectorSize: sectorSize, KDF: params, Fill: f, Progress: progress, Force: force, Format: format, Type: ctype,
			})
			finish()
			if err != nil {
				return err
			}
			defer vol.Close()
			if err := vol.Sync(); err != nil {
				return err
			}
			uuid := vol.UUID()
			kind := ""
			if ctype == container.TypeLUKS2 {
				kind = "LUKS2, "
			}
			u.printf("created %s: %s%s usable, aes-xts-plain64, sector size %d, uuid %s\n",
				path, kind, humanBytes(n), sectorSize, uuid)
			u.printf("keyslot 0: %s\n", params)
			u.warnWeak(path, 0, params)
			if fs, err := fsys.Lookup(filesystem); err == nil && fs.Driver == "" && os.Geteuid() != 0 {
				u.warnf("%s: only root can open a vault with %s in it (no userspace driver mounts %s); `cryptvol serve` gives the decrypted disk to a VM or a tool without root", path, filesystem, filesystem)
			}
			if filesystem != "none" {
				owner := ""
				if o := sudoOwner(); o != nil && fsHasOwners(filesystem) {
					owner = fmt.Sprintf(" (its root directory belongs to uid %d, who ran sudo)", o.UID)
				}
				u.printf("filesystem: %s%s\n", filesystem, owner)
			}
			if src != nil {
				u.printf("imported %s (%s)\n", from, humanBytes(n))
			}
			return vol.Close()
		},
	}
	fl := c.Flags()
	fl.StringVar(&size, "size", "", "usable size of the vault, e.g. 10G (required)")
	fl.IntVar(&sectorSize, "sector-size", 4096, "encryption sector size: 4096 or 512")
	fl.StringVar(&fill, "fill", "sparse", "sparse (fast, reveals usage) or random (writes the whole vault)")
	fl.StringVar(&filesystem, "filesystem", fsys.Names()[0], "filesystem to make inside: "+strings.Join(fsys.Names(), ", ")+" or none")
	fl.BoolVar(&force, "force", false, "replace an existing file")
	fl.StringVar(&from, "from", "", "make the vault hold this raw disk image or block device (its size, rounded up to the sector size)")
	kf.register(c)
	pf.register(c, false)
	tf.register(c, "cryptvol", container.TypeCryptvol, container.TypeLUKS2, container.TypeVeraCrypt)
	fl.StringVar(&encryption, "encryption", "AES", "VeraCrypt: the encryption algorithm, "+strings.Join(cipher.VeraCryptAlgorithms(), ", "))
	fl.StringVar(&prf, "prf", "sha512", "VeraCrypt: the PRF of the header key, "+strings.Join(veraCryptCreatePRFs(), ", "))
	fl.IntVar(&pim, "pim", 0, "VeraCrypt: the PIM (personal iterations multiplier); 0: the PRF's default")
	c.RegisterFlagCompletionFunc("encryption", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return cipher.VeraCryptAlgorithms(), cobra.ShellCompDirectiveNoFileComp
	})
	c.RegisterFlagCompletionFunc("prf", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return veraCryptCreatePRFs(), cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

// veraCryptCreatePRFs are the PRFs a new VeraCrypt volume may use: those
// VeraCrypt 1.26 opens.
func veraCryptCreatePRFs() []string {
	var out []string
	for _, p := range tcrypt.PRFNames() {
		if p != tcrypt.PRFRIPEMD160 {
			out = append(out, p)
		}
	}
	return out
}

// createVeraCrypt makes a VeraCrypt volume (create --type veracrypt).
func createVeraCrypt(c *cobra.Command, u *ui, path string, pf *secretFlags, o *container.VeraCryptOptions, filesystem, from string) error {
	pf.typ = container.TypeVeraCrypt
	pass, err := u.newSecret(pf, pf.file, pf.keyfiles, "Enter a passphrase for the new VeraCrypt volume "+path)
	if err != nil {
		return err
	}
	defer wipeSecret(pass)
	progress, finish := u.progress("filling with random data")
	o.Progress = progress
	vol, err := container.CreateVeraCrypt(c.Context(), path, pass, o)
	finish()
	if err != nil {
		return err
	}
	defer vol.Close()
	if err := vol.Sync(); err != nil {
		return err
	}
	g := vol.Geometry()
	u.printf("created %s: VeraCrypt volume, %s usable, %s (%s)\n", path, humanBytes(o.Size), o.Algorithm, g.Cipher)
	kdfs, _ := tcrypt.KDFs(tcrypt.VeraCrypt, o.PRF, o.PIM, false)
	u.printf("header key: %s\n", kdfs[len(kdfs)-1])
	if filesystem != "none" {
		u.printf("filesystem: %s\n", filesystem)
	}
	if from != "" {
		u.printf("imported %s (%s)\n", from, humanBytes(o.Size))
	}
	return vol.Close()
}

// formatter returns the hook that makes the filesystem inside a new vault,
// or nil for none. The size and privileges are checked before anything is
// asked or written.
func formatter(fs string, size int64) (func(*container.Volume) error, error) {
	if fs == "none" {
		return nil, nil
	}
	f, err := fsys.Lookup(fs)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--filesystem %q: must be one of %s, none", fs, strings.Join(fsys.Names(), ", "))}
	}
	if size < f.MinSize {
		return nil, &usageError{fmt.Sprintf("--filesystem %s needs a vault of at least %s", fs, humanBytes(f.MinSize))}
	}
	if os.Geteuid() != 0 {
		// Made on the FUSE file: fusermount3 must be usable.
		if err := fuseAvailable(); err != nil {
			return nil, err
		}
	}
	return func(vol *container.Volume) error {
		return mount.MakeFilesystem(mount.DefaultRegistry(), vol, fs, sudoOwner())
	}, nil
}

// sudoOwner returns the user who ran cryptvol through sudo, if any and if
// cryptvol runs as root.
func sudoOwner() *mount.Owner {
	if os.Geteuid() != 0 {
		return nil // sudo -u someone: the files are someone's already
	}
	uid, err1 := strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, err2 := strconv.Atoi(os.Getenv("SUDO_GID"))
	if err1 != nil || err2 != nil || uid == 0 {
		return nil
	}
	return &mount.Owner{UID: uid, GID: gid}
}

// checkTarget refuses an existing file unless forced, before any slow work.
func checkTarget(path string, force bool) error {
	err := checkNotExists(path)
	if err != nil && !force {
		return withHint(err, "pass --force to replace it (its contents are lost)")
	}
	return nil
}

func checkNotExists(path string) error {
	if strings.TrimSpace(path) == "" {
		return &usageError{"the vault file name is empty"}
	}
	if fileExists(path) {
		return fmt.Errorf("%s: %w", path, container.ErrExists)
	}
	return nil
}

// fsHasOwners reports whether files on fstype have owners (vfat's do not).
func fsHasOwners(fstype string) bool {
	f, err := fsys.Lookup(fstype)
	return err == nil && f.Owners
}
