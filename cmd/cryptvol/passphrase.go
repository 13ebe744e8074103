package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/awnumar/memguard"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/kdf"
)

// maxPassphrase bounds what is read from a passphrase file or stdin.
const maxPassphrase = 64 << 10

// secretFlags are how a user presents a secret (docs/FORMAT.md §4.1): a
// passphrase, from the terminal or a file, and keyfiles; and, for commands
// that set a new one, the new passphrase and keyfiles.
type secretFlags struct {
	file            string // --passphrase-file: "" = terminal, "-" = stdin
	keyfiles        []string
	specialKeyfiles bool
	newFile         string // --new-passphrase-file
	newKeyfiles     []string
	budget          string // --unlock-budget, "" for the default
	// LUKS: cryptsetup's --keyfile-offset and --keyfile-size, and a detached
	// header file (--header).
	keyfileOffset, keyfileSize int64
	header                     string
	// luks is set (learn) when the volume is LUKS: a keyfile is then the
	// whole secret, with no passphrase to ask for.
	luks bool
	// typ is the container's format when --type named one (unlockAs sets
	// it): a VeraCrypt or TrueCrypt keyfile may be a directory, and of any
	// size (only its first MiB counts).
	typ container.Type
}

// register adds the flags: the current secret, and with withNew the new one.
func (p *secretFlags) register(c *cobra.Command, withNew bool) {
	c.Flags().StringVar(&p.file, "passphrase-file", "", "read the passphrase from the first line of this file (- for standard input)")
	c.Flags().StringArrayVar(&p.keyfiles, "keyfile", nil, "a keyfile, in addition to the passphrase (repeat for several; any order)")
	c.Flags().BoolVar(&p.specialKeyfiles, "allow-special-keyfiles", false, fmt.Sprintf("accept keyfiles that are not regular files: pipes such as <(gpg -d key.gpg), devices (read up to %d MiB)", kdf.MaxKeyfileSize>>20))
	if withNew {
		c.Flags().StringVar(&p.newFile, "new-passphrase-file", "", "read the new passphrase from the first line of this file (- for standard input)")
		c.Flags().StringArrayVar(&p.newKeyfiles, "new-keyfile", nil, "a keyfile for the new keyslot (repeat for several)")
	}
	c.Flags().Int64Var(&p.keyfileOffset, "keyfile-offset", 0, "LUKS: skip this many bytes of the keyfile (as cryptsetup)")
	c.Flags().Int64Var(&p.keyfileSize, "keyfile-size", 0, "LUKS: use this many bytes of the keyfile (as cryptsetup; default: all of it, up to 8 MiB)")
	c.Flags().StringVar(&p.header, "header", "", "LUKS2: the volume's detached header file (as cryptsetup's --header)")
}

// headerPath is where path's header is: the --header file, or path itself.
func (p *secretFlags) headerPath(path string) string {
	if p.header != "" {
		return p.header
	}
	return path
}

// learn inspects the header of path (or --header) and returns what it says,
// remembering whether the volume is LUKS.
func (p *secretFlags) learn(path string) (*container.Info, error) {
	info, err := container.Inspect(p.headerPath(path))
	if err != nil {
		return nil, err
	}
	p.luks = info.LUKS != nil
	if p.header != "" && !p.luks {
		return nil, &usageError{fmt.Sprintf("--header %s: not a LUKS header (only LUKS volumes have detached headers)", p.header)}
	}
	return info, nil
}

// registerBudget adds --unlock-budget, for the commands that unlock a vault.
func (p *secretFlags) registerBudget(c *cobra.Command) {
	c.Flags().StringVar(&p.budget, "unlock-budget", "", fmt.Sprintf("the most key-derivation work one unlock may do, as memory × passes over all keyslots tried, e.g. 256G (default %s); raise it only for a vault you trust", kdf.DefaultBudget))
}

// unlockBudget parses --unlock-budget: a size in the units of --kdf-memory
// (K, M, G, T), read as KiB of memory passes.
func (p *secretFlags) unlockBudget() (kdf.Work, error) {
	if p.budget == "" {
		return 0, nil
	}
	b, err := parseSize(p.budget)
	if err != nil || b < 1024 {
		return 0, &usageError{fmt.Sprintf("--unlock-budget %q: want a size such as 128G (memory × passes)", p.budget)}
	}
	return kdf.Work(b / 1024), nil
}

func (p *secretFlags) check() error {
	if p.file == "-" && p.newFile == "-" {
		return &usageError{"--passphrase-file and --new-passphrase-file cannot both read standard input"}
	}
	return nil
}

// secret reads what unlocks path: the passphrase (empty allowed: a slot may be
// keyfile-only) and the keyfiles, checked before the prompt. The caller wipes
// it (wipeSecret). Memory is locked first (protectMemory): the passphrase and
// everything derived from it stay out of swap where the process may lock.
func (u *ui) secret(p *secretFlags, what string) (container.Secret, error) {
	protectMemory()
	prompt := "Enter passphrase for " + what + ": "
	if len(p.keyfiles) > 0 {
		prompt = "Enter passphrase for " + what + " (empty if none): "
	}
	s := container.Secret{Keyfiles: p.keyfiles, SpecialKeyfiles: p.specialKeyfiles,
		KeyfileOffset: p.keyfileOffset, KeyfileSize: p.keyfileSize}
	if err := checkKeyfilesAs(s, p.typ); err != nil {
		return container.Secret{}, err
	}
	if (p.keyfileOffset != 0 || p.keyfileSize != 0) && (!p.luks || len(p.keyfiles) != 1) {
		return container.Secret{}, &usageError{"--keyfile-offset and --keyfile-size apply to one --keyfile of a LUKS volume"}
	}
	if p.luks && len(p.keyfiles) > 0 && p.file == "" {
		return s, nil // a LUKS keyfile is the whole secret: nothing to ask
	}
	pass, err := u.readPassphrase(p.file, prompt)
	if err != nil {
		return container.Secret{}, err
	}
	s.Passphrase = pass
	return s, nil
}

// newSecret reads a new secret: a passphrase (from file, or typed twice after
// prompt) and keyfiles. An empty passphrase is allowed only with keyfiles.
func (u *ui) newSecret(p *secretFlags, file string, keyfiles []string, prompt string) (container.Secret, error) {
	protectMemory()
	s := container.Secret{Keyfiles: keyfiles, SpecialKeyfiles: p.specialKeyfiles}
	if err := checkKeyfilesAs(s, p.typ); err != nil {
		return container.Secret{}, err
	}
	if len(keyfiles) > 0 {
		prompt += " (empty for the keyfiles alone)"
	}
	prompt += ": "
	pass, err := u.readNewPassphrase(file, prompt, len(keyfiles) > 0)
	if err != nil {
		return container.Secret{}, err
	}
	s.Passphrase = pass
	return s, nil
}

// newSecretFor reads the new secret of a key add or change: as newSecret,
// except that for a LUKS volume a new keyfile alone is the whole secret
// (cryptsetup's luksAddKey NEW_KEYFILE), with nothing to ask.
func (u *ui) newSecretFor(p *secretFlags, prompt string) (container.Secret, error) {
	if p.luks && len(p.newKeyfiles) > 0 && p.newFile == "" {
		s := container.Secret{Keyfiles: p.newKeyfiles, SpecialKeyfiles: p.specialKeyfiles}
		if err := checkKeyfiles(s); err != nil {
			return container.Secret{}, err
		}
		return s, nil
	}
	return u.newSecret(p, p.newFile, p.newKeyfiles, prompt)
}

// checkKeyfiles reports an unusable keyfile before anything is asked.
func checkKeyfiles(s container.Secret) error { return checkKeyfilesAs(s, "") }

// checkKeyfilesAs is checkKeyfiles for a container of format typ ("": any
// but VeraCrypt's and TrueCrypt's).
func checkKeyfilesAs(s container.Secret, typ container.Type) error {
	if len(s.Keyfiles) > kdf.MaxKeyfiles {
		return &usageError{fmt.Sprintf("%d keyfiles: at most %d", len(s.Keyfiles), kdf.MaxKeyfiles)}
	}
	err := s.CheckKeyfilesAs(typ)
	switch {
	case errors.Is(err, container.ErrSpecialKeyfile):
		return withHint(err, "to read a keyfile from a pipe or a device, add --allow-special-keyfiles")
	case err != nil:
		return withHint(err, "check the path; the keyfile must be the very same file as when the keyslot was made")
	}
	return nil
}

// wipeSecret overwrites the passphrase of s once it is no longer needed.
func wipeSecret(s container.Secret) { wipe(s.Passphrase) }

// wipe overwrites a passphrase once it is no longer needed.
func wipe(b []byte) { memguard.WipeBytes(b) }

// readPassphrase reads a passphrase that unlocks something: from file (first
// line, "-" for stdin) or from the terminal without echo.
func (u *ui) readPassphrase(file, prompt string) ([]byte, error) {
	if file != "" {
		return u.readPassphraseFile(file)
	}
	return u.askTerminal(prompt)
}

// readNewPassphrase reads a new passphrase: from file, or from the terminal
// twice (the two must match). An empty one is refused unless allowEmpty.
func (u *ui) readNewPassphrase(file, prompt string, allowEmpty bool) ([]byte, error) {
	const repeat = "Repeat the passphrase: "
	var p []byte
	var err error
	if file != "" {
		p, err = u.readPassphraseFile(file)
	} else {
		p, err = u.askTerminal(prompt)
		if err == nil {
			var again []byte
			again, err = u.askTerminal(repeat)
			if err == nil && !bytes.Equal(p, again) {
				err = withHint(errors.New("the passphrases do not match"), "nothing was changed; run the command again")
			}
			wipe(again)
		}
	}
	if err == nil && len(p) == 0 && !allowEmpty {
		err = withHint(errors.New("the new passphrase is empty"), "choose a passphrase, or give --keyfile for a keyfile-only keyslot")
	}
	if err != nil {
		wipe(p)
		return nil, err
	}
	return p, nil
}

// readPassphraseFile returns the first line of file ("-": standard input),
// without its line ending (\n or \r\n).
func (u *ui) readPassphraseFile(file string) ([]byte, error) {
	var r io.Reader = u.stdin
	name := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	// Standard input or a FIFO may be a person typing, or a pipe that never ends.
	line, err := u.untilInterrupted(func() ([]byte, error) { return readLine(r, maxPassphrase) })
	if errors.Is(err, errInterrupted) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase from %s: %w", name, err)
	}
	return line, nil
}

// readLine reads up to the first newline, refusing lines longer than max. It
// reads byte by byte so that nothing after the line is consumed from a shared
// stdin.
func readLine(r io.Reader, max int) ([]byte, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &byteReader{r: r}
	}
	line := make([]byte, 0, 128)
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			wipe(line)
			return nil, err
		}
		if c == '\n' {
			break
		}
		if len(line) == max {
			wipe(line)
			return nil, fmt.Errorf("the first line is longer than %d bytes", max)
		}
		if len(line) == cap(line) { // grow without leaving copies behind
			bigger := make([]byte, len(line), 2*cap(line))
			copy(bigger, line)
			wipe(line)
			line = bigger
		}
		line = append(line, c)
	}
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

type byteReader struct {
	r io.Reader
	b [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(b.r, b.b[:]); err != nil {
		return 0, err
	}
	return b.b[0], nil
}

var errNoTerminal = withHint(errors.New("no terminal to ask for the passphrase"),
	"use --passphrase-file FILE, or --passphrase-file - to read it from standard input")

// askTerminal prompts on the controlling terminal and reads a line without
// echo; the prompt is erased afterwards. An interrupt ends the read with
// errInterrupted, and the terminal is put back before askTerminal returns.
func (u *ui) askTerminal(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errNoTerminal
	}
	defer tty.Close()
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, errNoTerminal
	}
	// Echo goes off before the prompt shows: whoever types as soon as they
	// see it (a person typing ahead, a script) must not see it echoed. Only
	// this goroutine changes the terminal's mode, so nothing can turn echo
	// off again after the restore.
	if err := noEcho(fd); err != nil {
		return nil, errNoTerminal
	}
	defer term.Restore(fd, state)
	fmt.Fprint(tty, printable(prompt))
	p, err := u.untilInterrupted(func() ([]byte, error) { return readTerminalLine(tty) })
	fmt.Fprint(tty, "\r\x1b[K") // erase the prompt line
	switch {
	case errors.Is(err, errInterrupted):
		return nil, err
	case errors.Is(err, io.EOF):
		return nil, errors.New("no passphrase: the input ended (Ctrl-D) at the prompt")
	case err != nil:
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return p, nil
}

// readTerminalLine reads a line typed at a terminal in canonical mode (the
// kernel does the line editing). End of input with nothing typed (Ctrl-D at
// an empty prompt) is io.EOF, not an empty passphrase.
func readTerminalLine(tty io.Reader) ([]byte, error) {
	r := &eofReader{r: tty}
	line, err := readLine(r, maxPassphrase)
	if err == nil && r.eof && len(line) == 0 {
		err = io.EOF
	}
	return line, err
}

type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// askConfirm asks a yes/no question on the terminal; only "yes" confirms.
func (u *ui) askConfirm(question string) (bool, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false, withHint(errors.New("no terminal to ask for confirmation"), "pass --yes to confirm")
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s Type \"yes\" to continue: ", printable(question))
	line, err := u.untilInterrupted(func() ([]byte, error) { return readLine(tty, 1024) })
	if errors.Is(err, errInterrupted) {
		fmt.Fprint(tty, "\r\n")
	}
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(line)) == "yes", nil
}

// untilInterrupted runs read, which may wait on a person (a terminal, or
// standard input), and returns errInterrupted as soon as an interrupt comes:
// the kernel does not end such a read on SIGINT, and the command would wait for
// a line that may never come. The abandoned read's line, should one still
// arrive before the process exits, is wiped.
//
// It watches SIGINT, SIGTERM and SIGHUP itself, and ui.interrupted for an
// interrupt that came before (between run's start and the prompt).
func (u *ui) untilInterrupted(read func() ([]byte, error)) ([]byte, error) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := read()
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-sigs:
	case <-u.interrupted:
	}
	go func() { wipe((<-done).line) }()
	return nil, errInterrupted
}
