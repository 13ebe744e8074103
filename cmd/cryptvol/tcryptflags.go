package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/tcrypt"
)

// formatFlags are --type and the options of VeraCrypt and TrueCrypt volumes
// (docs/VERACRYPT.md), for a command that unlocks a container.
type formatFlags struct {
	typ          typeFlag
	pim          int
	prf          string
	system       bool
	backupHeader bool

	withProtect     bool
	protect         bool
	protectFile     string
	protectKeyfiles []string
	protectPIM      int
	protectPRF      string
}

// tcryptOnly are the flags that mean nothing without --type veracrypt or
// truecrypt.
var tcryptOnly = []string{"pim", "prf", "system", "backup-header", "protect-hidden",
	"protect-hidden-passphrase-file", "protect-hidden-keyfile", "protect-hidden-pim", "protect-hidden-prf"}

// register adds the flags to c; withProtect adds hidden volume protection
// (for commands that open a volume read-write).
func (f *formatFlags) register(c *cobra.Command, withProtect bool) {
	f.typ.register(c, "recognised by its header", container.TypeCryptvol, container.TypeLUKS1, container.TypeLUKS2, container.TypeVeraCrypt, container.TypeTrueCrypt)
	fl := c.Flags()
	prfs := strings.Join(tcrypt.PRFNames(), ", ")
	fl.IntVar(&f.pim, "pim", 0, "VeraCrypt PIM (personal iterations multiplier) of the volume; 0: none")
	fl.StringVar(&f.prf, "prf", "", "try only this PRF for a VeraCrypt or TrueCrypt header: "+prfs)
	fl.BoolVar(&f.system, "system", false, "a VeraCrypt or TrueCrypt system-encryption volume in a disk image (read-only)")
	fl.BoolVar(&f.backupHeader, "backup-header", false, "use the backup header at the end of a VeraCrypt or TrueCrypt volume (its primary header is damaged)")
	for _, name := range []string{"prf"} {
		c.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return tcrypt.PRFNames(), cobra.ShellCompDirectiveNoFileComp
		})
	}
	if !withProtect {
		return
	}
	f.withProtect = true
	fl.BoolVar(&f.protect, "protect-hidden", false, "open the outer volume of a VeraCrypt volume and refuse every write into its hidden volume (its passphrase is asked)")
	fl.StringVar(&f.protectFile, "protect-hidden-passphrase-file", "", "read the hidden volume's passphrase from this file (- for standard input); implies --protect-hidden")
	fl.StringArrayVar(&f.protectKeyfiles, "protect-hidden-keyfile", nil, "a keyfile of the hidden volume (repeat for several); implies --protect-hidden")
	fl.IntVar(&f.protectPIM, "protect-hidden-pim", 0, "the hidden volume's PIM")
	fl.StringVar(&f.protectPRF, "protect-hidden-prf", "", "try only this PRF for the hidden volume's header")
	c.RegisterFlagCompletionFunc("protect-hidden-prf", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return tcrypt.PRFNames(), cobra.ShellCompDirectiveNoFileComp
	})
}

// resolve checks the flags and returns the format and its options, without
// the protected hidden volume's secret (protectSecret reads it).
func (f *formatFlags) resolve(c *cobra.Command) (container.Type, container.TCryptOptions, error) {
	typ, err := f.typ.get()
	if err != nil {
		return "", container.TCryptOptions{}, err
	}
	if !isTCrypt(typ) {
		for _, name := range tcryptOnly {
			if fl := c.Flags().Lookup(name); fl != nil && fl.Changed {
				return "", container.TCryptOptions{}, &usageError{fmt.Sprintf("--%s is for VeraCrypt and TrueCrypt volumes: add --type veracrypt (or truecrypt)", name)}
			}
		}
		return typ, container.TCryptOptions{}, nil
	}
	o := container.TCryptOptions{PIM: f.pim, System: f.system, BackupHeader: f.backupHeader, ProtectPIM: f.protectPIM}
	if o.PRF, err = checkPRF("--prf", f.prf); err != nil {
		return "", o, err
	}
	if o.ProtectPRF, err = checkPRF("--protect-hidden-prf", f.protectPRF); err != nil {
		return "", o, err
	}
	f.protect = f.protect || f.protectFile != "" || len(f.protectKeyfiles) > 0
	maxPIM := tcrypt.MaxPIM
	if f.system {
		maxPIM = tcrypt.MaxSystemPIM
	}
	switch {
	case f.pim < 0 || f.pim > maxPIM:
		return "", o, &usageError{fmt.Sprintf("--pim %d: must be 0 to %d", f.pim, maxPIM)}
	case f.protectPIM < 0 || f.protectPIM > tcrypt.MaxPIM:
		return "", o, &usageError{fmt.Sprintf("--protect-hidden-pim %d: must be 0 to %d", f.protectPIM, tcrypt.MaxPIM)}
	case typ == container.TypeTrueCrypt && (f.pim != 0 || f.protectPIM != 0):
		return "", o, &usageError{"TrueCrypt volumes have no PIM: drop --pim, or use --type veracrypt"}
	case f.system && f.backupHeader:
		return "", o, &usageError{"--system and --backup-header: a system-encryption volume keeps no backup header in the volume"}
	case f.system && f.protect:
		return "", o, &usageError{"--system and --protect-hidden: system-encryption volumes open read-only"}
	case !f.protect && (f.protectPIM != 0 || f.protectPRF != ""):
		return "", o, &usageError{"--protect-hidden-pim and --protect-hidden-prf go with --protect-hidden"}
	}
	return typ, o, nil
}

func checkPRF(flag, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	p, err := tcrypt.CanonicalPRF(name)
	if err != nil {
		return "", &usageError{flag + ": " + err.Error()}
	}
	return p, nil
}

// protectSecret reads the secret of the hidden volume to protect, if asked:
// from --protect-hidden-passphrase-file or the terminal, with its keyfiles
// (special ones as --allow-special-keyfiles says for the others). The caller
// wipes it.
func (u *ui) protectSecret(f *formatFlags, pf *secretFlags, path string) (*container.Secret, error) {
	if !f.protect {
		return nil, nil
	}
	s, err := u.secret(&secretFlags{file: f.protectFile, keyfiles: f.protectKeyfiles, specialKeyfiles: pf.specialKeyfiles, typ: pf.typ},
		"the hidden volume to protect in "+path)
	if err != nil {
		return nil, err
	}
	return &s, nil
}
