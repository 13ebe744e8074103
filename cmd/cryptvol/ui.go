package main

// How cryptvol talks to its user. Every command follows these rules:
//
//   - Results go to stdout, one fact per line, or a JSON document with --json.
//     Nothing else goes to stdout, so scripts can parse it.
//   - Everything for the human goes to stderr: prompts (to the terminal itself),
//     progress bars (only when stderr is a terminal, and not with --quiet),
//     warnings as "cryptvol: warning: …", errors as "cryptvol: error: …",
//     followed where it helps by "cryptvol: hint: …" naming the next step.
//   - Messages are lowercase, without a final period, and name the file or
//     device they are about.
//   - The exit code says what happened (see exitcodes.go); it is part of the
//     interface and tested.
//   - Secrets never appear in output, arguments or the environment: passphrases
//     are read from the terminal (no echo) or from --passphrase-file.
//   - Text that comes from outside (file and process names, paths, mount
//     options, what a filesystem check or another user's process said) is
//     shown through printable, so it cannot send the terminal escape
//     sequences or fake lines: printf, warnf, hintf and the error line apply
//     it to every string and error argument; output written another way
//     (tables) applies it itself.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ui carries the standard streams and output switches of one invocation.
type ui struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	quiet          bool
	// interrupted is closed once the command is interrupted (SIGINT,
	// SIGTERM); the prompts watch it. Nil: never.
	interrupted <-chan struct{}
}

func (u *ui) printf(format string, args ...any) {
	fmt.Fprintf(u.stdout, format, printableArgs(args)...)
}

func (u *ui) warnf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "cryptvol: warning: "+format+"\n", printableArgs(args)...)
}

func (u *ui) hintf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "cryptvol: hint: "+format+"\n", printableArgs(args)...)
}

// printable returns s with everything a terminal would act on instead of
// showing escaped, Go style: control characters (C0 including newline and
// tab, DEL, C1) as \xNN or \uNNNN, bytes that are not UTF-8 as \xNN, and the
// invisible marks that reorder or hide text (bidirectional overrides and
// isolates, zero-width characters) as \uNNNN. Other text, non-ASCII letters
// included, is left as it is.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !showable(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && !showable(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !showable(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// showable reports whether r may go to a terminal as it is.
func showable(r rune) bool {
	switch {
	case r == ' ':
		return true
	case unicode.IsControl(r): // C0, DEL, C1
		return false
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x061c, r == 0xfeff:
		return false // zero-width and bidirectional marks
	}
	return unicode.IsPrint(r) || unicode.IsGraphic(r)
}

// printableArgs applies printable to the strings and errors among args.
func printableArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = printable(v)
		case error:
			out[i] = printable(v.Error())
		default:
			out[i] = a
		}
	}
	return out
}

// stderrIsTerminal reports whether progress bars make sense.
func (u *ui) stderrIsTerminal() bool {
	f, ok := u.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress returns a progress callback drawing a bar on stderr, or nil when
// stderr is not a terminal or --quiet is set. Call the returned finish function
// when the operation ends, successfully or not.
func (u *ui) progress(description string) (update func(done, total int64), finish func()) {
	if u.quiet || !u.stderrIsTerminal() {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	update = func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(u.stderr),
				progressbar.OptionSetDescription(description),
				progressbar.OptionShowBytes(true),
				progressbar.OptionUseIECUnits(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		bar.Set64(done)
	}
	finish = func() {
		if bar != nil {
			bar.Finish()
		}
	}
	return update, finish
}

// humanBytes renders a byte count in binary units, exactly when it is exact
// ("10 GiB"), otherwise with one decimal ("1.5 GiB").
func humanBytes(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
