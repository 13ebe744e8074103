package fsys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrCheckFailed matches (errors.Is) a *CheckError.
var ErrCheckFailed = errors.New("the filesystem check found problems")

// CheckError is a check that did not pass: the filesystem's own checker found
// problems, could not vouch for it, or could not run.
type CheckError struct {
	Dev     string
	Command string // "e2fsck -n -f"
	Err     error  // the exit status, or why it could not run
	// Output is the end of what the checker said, on one line: text from
	// the filesystem (file names) included, so shown escaped.
	Output string
}

func (e *CheckError) Error() string {
	msg := fmt.Sprintf("the filesystem check of %s (%s) did not pass: %v", e.Dev, e.Command, e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *CheckError) Unwrap() error { return e.Err }

func (e *CheckError) Is(target error) bool { return target == ErrCheckFailed }

// checkOutputMax bounds what is kept of a checker's output: its last lines,
// this many bytes at most.
const checkOutputMax = 600

// Check runs the read-only check of the catalogue (CheckCommand) on the
// filesystem of type fstype (as Probe names it) on dev, which must not be
// mounted: it changes nothing on dev. A filesystem the checker does not pass
// (or that it cannot vouch for, such as an XFS whose log needs replaying,
// which only mounting does) is a *CheckError with the end of its output. It
// returns the command it ran.
func Check(ctx context.Context, dev, fstype string) (string, error) {
	f, err := ForType(fstype)
	if err != nil {
		return "", fmt.Errorf("check: %w", err)
	}
	command := f.CheckCommand()
	prog, err := LookPath(f.check)
	if err != nil {
		return command, &CheckError{Dev: dev, Command: command, Err: fmt.Errorf("%s not found (install %s)", f.check, f.Package)}
	}
	cmd, err := f.toolCommand(ctx, prog, append(append([]string{}, f.checkArgs...), dev)...)
	if err != nil {
		return command, &CheckError{Dev: dev, Command: command, Err: err}
	}
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return command, &CheckError{Dev: dev, Command: command, Err: err, Output: out.lastLines()}
	}
	return command, nil
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

// lastLines returns the last non-empty lines, joined with "; ", at most
// checkOutputMax bytes of them.
func (t *tailBuffer) lastLines() string {
	var lines []string
	n := 0
	for _, l := range slices.Backward(strings.Split(string(t.b), "\n")) {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if n+len(l) > checkOutputMax {
			if len(lines) == 0 {
				lines = append(lines, "…"+l[len(l)-checkOutputMax:])
			}
			break
		}
		lines = append(lines, l)
		n += len(l) + 2
	}
	slices.Reverse(lines)
	return strings.Join(lines, "; ")
}
