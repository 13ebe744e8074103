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

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ui carries the standard streams and output switches of one invocation.
type ui struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	quiet          bool
}

func (u *ui) printf(format string, args ...any) { fmt.Fprintf(u.stdout, format, args...) }

func (u *ui) warnf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "cryptvol: warning: "+format+"\n", args...)
}

func (u *ui) hintf(format string, args ...any) {
	fmt.Fprintf(u.stderr, "cryptvol: hint: "+format+"\n", args...)
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
