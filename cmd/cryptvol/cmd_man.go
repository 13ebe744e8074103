package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date printed in the man pages. It is fixed so that the pages
// committed under docs/man only change when the commands do (a test checks
// they are up to date).
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

func newManCommand(u *ui) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write the man pages (cryptvol.1, cryptvol-create.1, …) into DIR",
		Long: `Write a man page for cryptvol and each of its commands into DIR (created if
missing). The pages are generated from the same help the commands print.

  cryptvol man /usr/local/share/man/man1 && mandb`,
		Args: exactArgs(1, "an output directory"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			if err := genMan(c.Root(), args[0]); err != nil {
				return err
			}
			pages, _ := filepath.Glob(filepath.Join(args[0], "cryptvol*.1"))
			u.printf("wrote %d man pages to %s\n", len(pages), args[0])
			return nil
		},
	}
}

func genMan(root *cobra.Command, dir string) error {
	root.DisableAutoGenTag = true
	root.InitDefaultCompletionCmd() // added by Execute otherwise: the same pages however genMan is reached
	hdr := &doc.GenManHeader{Title: "CRYPTVOL", Section: "1", Date: &manDate, Source: "cryptvol", Manual: "cryptvol manual"}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("writing man pages: %w", err)
	}
	return nil
}
