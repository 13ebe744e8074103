package main

import (
	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/mount"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

// Shell completion (`cryptvol completion bash|zsh|fish`): file names complete
// by default; these add the fixed choices of flags and the open vaults that
// close accepts.

func completeChoices(choices ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return choices, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerCompletions attaches choice completions to the flags that exist on c
// and its subcommands.
func registerCompletions(c *cobra.Command) {
	choices := map[string][]string{
		"via":         {"auto", "nbd", "loop", "fuse"},
		"filesystem":  append(fsys.Names(), "none"),
		"fill":        {"sparse", "random"},
		"sector-size": {"4096", "512"},
		"check":       {"auto", "always", "never"},
	}
	for name, cs := range choices {
		if c.Flags().Lookup(name) != nil {
			c.RegisterFlagCompletionFunc(name, completeChoices(cs...))
		}
	}
	for _, sub := range c.Commands() {
		registerCompletions(sub)
	}
}

// completeOpenVaults offers the mount points (or files, for vaults opened
// without mounting) of the open vaults.
func completeOpenVaults(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	entries, _ := mount.ListAll(mount.Registries())
	var out []string
	for _, e := range entries {
		st := e.State
		if st.MountPoint != "" {
			out = append(out, st.MountPoint)
		} else {
			out = append(out, st.File)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
