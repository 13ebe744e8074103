package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/spf13/cobra"

	"github.com/cryptvol/cryptvol/mount"
)

// The hidden command `cryptvol open` starts as the background server
// (mount.Start, mount.RunServer). It is not for users.
func newServerCommand(u *ui) *cobra.Command {
	return &cobra.Command{
		Use:    mount.ServerCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			// Its output goes to the server's log file (mount.Start).
			logger := log.New(os.Stderr, fmt.Sprintf("cryptvol[%d] ", os.Getpid()), log.LstdFlags)
			return mount.RunServer(mount.ServerOptions{Log: logger.Printf, Classify: classify})
		},
	}
}

// classify gives an error the exit code and hint the CLI would give it.
func classify(err error) (int, string) {
	var h *hinted
	if errors.As(err, &h) {
		return exitCode(err), h.hint
	}
	return exitCode(err), defaultHint(err)
}
