package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/cryptvol/cryptvol/container"
)

// The background server is this same program started again with the hidden
// command ServerCommand. Start (in `cryptvol open`) and RunServer (in the
// server) are the two ends of one protocol, both here:
//
//   - fd 3: the Config, one JSON message; then closed.
//   - fd 4: the master key, written by container.Vault.WriteKey; then closed.
//     Keys never travel on the command line, in the environment or in a file.
//   - fd 5: the server's one status message (a startStatus), sent once the
//     vault is attached and mounted, or once it failed.
//
// Standard output and error go to the server's log file in the registry.

// ServerCommand is the hidden command of the CLI that runs RunServer.
const ServerCommand = "__server"

// readyTimeout bounds how long Start waits for the server to be ready;
// checkedReadyTimeout when it checks the filesystem first, which takes as long
// as the filesystem is large.
const (
	readyTimeout        = 5 * time.Minute
	checkedReadyTimeout = 2 * time.Hour
)

// Config says how an open vault is exposed by its background server.
type Config struct {
	ID           string `json:"id"`
	File         string `json:"file"`                  // absolute path of the vault file
	Header       string `json:"header,omitempty"`      // absolute path of a detached LUKS2 header, if any
	MountPoint   string `json:"mount_point,omitempty"` // "" to attach the device only
	Via          string `json:"via"`                   // ViaLoop, ViaNBD or ViaFUSE
	ReadOnly     bool   `json:"read_only,omitempty"`
	MountOptions string `json:"mount_options,omitempty"`
	// VFATOptions are added to MountOptions when the filesystem turns out to
	// be vfat, which has no file owners (e.g. uid= and gid= of the user who
	// opened it).
	VFATOptions  string `json:"vfat_options,omitempty"`
	AllowDiscard bool   `json:"allow_discard,omitempty"`
	// Check runs the filesystem's own read-only check (fsys.Check) before
	// mounting it; a filesystem that does not pass is not mounted.
	Check bool `json:"check,omitempty"`
	// Registry is the registry directory, set by Start from its Registry.
	Registry string `json:"registry"`
	// Type and Geometry are the unlocked vault's, set by Start: they travel
	// with the key, for formats whose header the key alone does not open
	// (container.OpenWithKey). Nothing in them is secret.
	Type     container.Type      `json:"type,omitempty"`
	Geometry *container.Geometry `json:"geometry,omitempty"`
}

// startStatus is the one message the server sends on its status pipe.
type startStatus struct {
	OK    bool   `json:"ok"`
	State *State `json:"state,omitempty"`
	// Warnings are what the server could not do but opened the vault
	// without (memory it could not lock), for the CLI to say once.
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
	Code     int      `json:"code,omitempty"`
	Hint     string   `json:"hint,omitempty"`
}

// ServerError is a failure the server reported before it was ready: its
// message, and the exit code and hint the server's Classify gave it, so the
// CLI reports it as if it had happened in its own process.
type ServerError struct {
	Msg  string
	Code int
	Hint string
}

func (e *ServerError) Error() string { return e.Msg }

// Start runs the background server for the unlocked vault v as cfg says,
// hands it the master key, and waits until the vault is attached and mounted.
// cfg.ID is filled in if empty. The server runs on after Start returns, in a
// session of its own, until Close. warn, if not nil, is told what the server
// could not do but opened the vault without (memory it could not lock).
func Start(reg Registry, v *container.Vault, cfg Config, warn func(string)) (State, error) {
	if cfg.ID == "" {
		cfg.ID = newID(v.UUID())
	}
	cfg.Registry = reg.Dir
	g := v.Geometry()
	cfg.Type, cfg.Geometry = v.Type(), &g
	if err := reg.Ensure(); err != nil {
		return State{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return State{}, err
	}
	logf, err := os.OpenFile(reg.LogPath(cfg.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return State{}, err
	}
	defer logf.Close()

	var child, parent [3]*os.File // config, key, status: the child's ends and ours
	defer func() {
		for _, f := range append(child[:], parent[:]...) {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range child {
		r, w, err := os.Pipe()
		if err != nil {
			return State{}, err
		}
		if i == 2 { // status: the server writes
			child[i], parent[i] = w, r
		} else {
			child[i], parent[i] = r, w
		}
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{"cryptvol", ServerCommand},
		Env:         os.Environ(),
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  child[:], // fds 3, 4, 5
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	for i := range child {
		child[i].Close()
		child[i] = nil
	}
	if err != nil {
		return State{}, fmt.Errorf("starting the server: %w", err)
	}
	go cmd.Wait() // reap it if it fails early; once detached, init adopts it

	if err := json.NewEncoder(parent[0]).Encode(cfg); err != nil {
		return State{}, fmt.Errorf("handing the configuration to the server: %w", err)
	}
	parent[0].Close()
	parent[0] = nil
	if err := v.WriteKey(parent[1]); err != nil {
		return State{}, fmt.Errorf("handing the key to the server: %w", err)
	}
	parent[1].Close()
	parent[1] = nil

	ch := make(chan error, 1)
	var st startStatus
	go func() { ch <- json.NewDecoder(parent[2]).Decode(&st) }()
	wait := readyTimeout
	if cfg.Check {
		wait = checkedReadyTimeout
	}
	select {
	case err = <-ch:
	case <-time.After(wait):
		cmd.Process.Kill()
		return State{}, fmt.Errorf("the server did not become ready within %v (its log: %s)", wait, reg.LogPath(cfg.ID))
	}
	if err != nil {
		return State{}, &ServerError{Msg: fmt.Sprintf("the server exited before it was ready: %v", err), Hint: "its log is " + reg.LogPath(cfg.ID)}
	}
	if !st.OK || st.State == nil {
		reg.RemoveLog(cfg.ID)
		return State{}, &ServerError{Msg: st.Error, Code: st.Code, Hint: st.Hint}
	}
	if warn != nil {
		for _, w := range st.Warnings {
			warn(w)
		}
	}
	return *st.State, nil
}

// ServerOptions are what the CLI gives RunServer: where its log goes and how
// its errors become exit codes and hints, which only the CLI knows.
type ServerOptions struct {
	// Log receives what the server does and what goes wrong; never secrets.
	Log func(format string, args ...any)
	// Classify gives a failure its exit code and hint for ServerError.
	Classify func(error) (code int, hint string)
}

// RunServer is the background server process: it reads its Config and the
// master key from the pipes Start made, hardens itself before the key
// arrives, opens and exposes the vault, reports readiness, and serves until
// it is closed (Close) or signalled (SIGTERM, SIGINT, SIGHUP: it then closes
// the vault cleanly, unmounting lazily if the filesystem is busy).
func RunServer(opts ServerOptions) error {
	cfgPipe, keyPipe, status := os.NewFile(3, "config"), os.NewFile(4, "key"), os.NewFile(5, "status")
	if _, err := status.Stat(); err != nil {
		return errors.New("this command is started by `cryptvol open`")
	}
	defer keyPipe.Close()
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	report := func(st startStatus) {
		json.NewEncoder(status).Encode(st)
		status.Close()
	}
	fail := func(err error) error {
		opts.Log("failed: %v", err)
		st := startStatus{Error: err.Error()}
		if opts.Classify != nil {
			st.Code, st.Hint = opts.Classify(err)
		}
		report(st)
		return err
	}
	var cfg Config
	err := json.NewDecoder(io.LimitReader(cfgPipe, 1<<20)).Decode(&cfg)
	cfgPipe.Close()
	if err != nil {
		return fail(fmt.Errorf("reading the configuration: %w", err))
	}
	// Before the key arrives: no core dumps, no swapping. The fuse path
	// serves no kernel block device, so it is not in the block I/O path.
	warnings, err := Harden(cfg.Via != ViaFUSE)
	if err != nil {
		return fail(err)
	}
	for _, w := range warnings {
		opts.Log("warning: %s", w)
	}
	vol, err := container.OpenWithKey(cfg.File, keyPipe, &container.OpenOptions{ReadOnly: cfg.ReadOnly, Header: cfg.Header, Type: cfg.Type, Geometry: cfg.Geometry})
	keyPipe.Close()
	if err != nil {
		return fail(err)
	}
	// What the user is told at open: what memory is not locked, where a
	// limit keeps the server from locking all of it.
	var lock func([]byte)
	var tell []string
	if all, limit := memlockPolicy(); !all && limit > 0 {
		// After the volume is open: its keys are locked by now, and the
		// buffers get what the limit leaves.
		l := newBufferLocker(limit, opts.Log)
		lock = l.Lock
		tell = append(tell, memlockWarning(limit, l.Budget()))
		opts.Log("%s", tell[0])
	}
	// Signals from now on close the vault cleanly instead of killing us.
	sctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	srv, err := startServer(vol, cfg, opts.Log, lock)
	if err != nil {
		return fail(err)
	}
	st := srv.state
	report(startStatus{OK: true, State: &st, Warnings: tell})
	opts.Log("ready: %s on %s", cfg.File, st.Device)
	return srv.wait(sctx)
}
