// Command cryptvol creates and opens encrypted container volumes: a vault file
// holding an XTS-AES-256 encrypted disk, unlocked by a passphrase (Argon2id).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/awnumar/memguard"
	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], &ui{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

// run executes one command line and returns its exit code.
func run(args []string, u *ui) int {
	defer memguard.Purge()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u.interrupted = ctx.Done()
	root := newRootCommand(u)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, errInterrupted) {
		err = fmt.Errorf("%w: %w", errInterrupted, err)
	}
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	// Several errors joined (close --all) get a line each; a newline inside
	// one is shown escaped, as everything from outside is (see ui.go).
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		fmt.Fprintf(u.stderr, "cryptvol: error: %s\n", printable(e.Error()))
	}
	var h *hinted
	if errors.As(err, &h) {
		u.hintf("%s", h.hint)
	} else if hint := defaultHint(err); hint != "" {
		u.hintf("%s", hint)
	}
	var ue *usageError
	if errors.As(err, &ue) && !strings.Contains(msg, "--help") {
		u.hintf("see `cryptvol %s--help`", commandPath(root, args))
	}
	return exitCode(err)
}

// commandPath returns "sub " for the subcommand args name, for the help hint.
func commandPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), root.Name()+" ") + " "
}

func newRootCommand(u *ui) *cobra.Command {
	root := &cobra.Command{
		Use:   "cryptvol",
		Short: "Encrypted container volumes in a file",
		Long: `cryptvol keeps an encrypted disk in a single file (a vault). A passphrase
unlocks it; opened, it appears as a block device with its filesystem mounted.

Exit codes: 0 ok, 1 error, 2 usage, 3 wrong passphrase, 4 damaged or
unsupported vault, 130 interrupted.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Sprintf("unknown command %q", args[0])}
			}
			return c.Help()
		},
	}
	root.SetOut(u.stdout)
	root.SetErr(u.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.PersistentFlags().BoolVarP(&u.quiet, "quiet", "q", false, "no progress bars")
	root.AddCommand(
		newCreateCommand(u),
		newInfoCommand(u),
		newOpenCommand(u),
		newPasswdCommand(u),
		newResizeCommand(u),
		newExportCommand(u),
		newKeyCommand(u),
		newHeaderCommand(u),
		newCloseCommand(u),
		newListCommand(u),
		newServeCommand(u),
		newManCommand(u),
		newServerCommand(u),
		newBenchmarkCommand(u),
	)
	registerCompletions(root)
	return root
}

// exactArgs is cobra.ExactArgs reporting a usage error (exit 2).
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Sprintf("%s takes %s (got %d argument%s)", c.CommandPath(), names, len(args), plural(len(args)))}
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
