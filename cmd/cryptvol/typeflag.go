package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/container"
)

// formats is the one table of the container formats --type names: every
// command that takes --type accepts a subset of it, and help, completion
// and errors list that subset from here.
var formats = []struct {
	name string
	typ  container.Type
	help string
}{
	{"cryptvol", container.TypeCryptvol, "cryptvol's own format"},
	{"luks1", container.TypeLUKS1, "a LUKS1 volume (cryptsetup)"},
	{"luks2", container.TypeLUKS2, "a LUKS2 volume (cryptsetup)"},
	{"veracrypt", container.TypeVeraCrypt, "a VeraCrypt volume (also TrueCrypt 6 and 7)"},
	{"truecrypt", container.TypeTrueCrypt, "a TrueCrypt 5, 6 or 7 volume"},
}

// typeFlag is --type: which container format a command works on. Unset, a
// command that opens a file recognises the format by its header's magic;
// one that makes a file makes cryptvol's own.
type typeFlag struct {
	name    string
	allowed []container.Type
}

// register adds --type to c, taking the formats in allowed; unset means
// dflt (e.g. "recognised by its header").
func (t *typeFlag) register(c *cobra.Command, dflt string, allowed ...container.Type) {
	t.allowed = allowed
	var names []string
	for _, f := range formats {
		if slices.Contains(allowed, f.typ) {
			names = append(names, f.name)
		}
	}
	c.Flags().StringVar(&t.name, "type", "", "container format: "+strings.Join(names, ", ")+" (default: "+dflt+")")
	c.RegisterFlagCompletionFunc("type", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, f := range formats {
			if slices.Contains(allowed, f.typ) {
				out = append(out, f.name+"\t"+f.help)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// get returns the format asked for, "" if --type was not given.
func (t *typeFlag) get() (container.Type, error) {
	if t.name == "" {
		return "", nil
	}
	var names []string
	for _, f := range formats {
		if !slices.Contains(t.allowed, f.typ) {
			continue
		}
		if strings.EqualFold(f.name, t.name) {
			return f.typ, nil
		}
		names = append(names, f.name)
	}
	return "", &usageError{fmt.Sprintf("--type %q: must be one of %s", t.name, strings.Join(names, ", "))}
}

// isTCrypt reports whether t is VeraCrypt's or TrueCrypt's format.
func isTCrypt(t container.Type) bool {
	return t == container.TypeVeraCrypt || t == container.TypeTrueCrypt
}
