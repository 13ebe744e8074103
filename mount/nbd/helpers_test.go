package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/internal/e2e"
)

// startNBD serves dev on a Unix socket in a temporary directory and returns the
// server and the socket path. Cleanup closes the server and checks that nothing
// it started is left behind.
func startNBD(t testing.TB, dev Device, opts Options) (*Server, string) {
	t.Helper()
	return startNBDWith(t, dev, opts, nil)
}

// startNBDWith is startNBD with a hook that may adjust the server before it
// starts serving.
func startNBDWith(t testing.TB, dev Device, opts Options, hook func(*Server)) (*Server, string) {
	t.Helper()
	checkNBDLeaks(t)
	var errMu sync.Mutex
	var errs []error
	if opts.OnError == nil {
		opts.OnError = func(err error) {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
		}
	}
	srv, err := NewServer(dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(srv)
	}
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, l, func() []error {
		errMu.Lock()
		defer errMu.Unlock()
		return errs
	})
	return srv, sock
}

// serveOn runs srv.Serve on l until the test's cleanup closes it, then logs
// the errors reported returns.
func serveOn(t testing.TB, srv *Server, l net.Listener, reported func() []error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			// ErrServerClosed: Close came before Serve started.
			if err != nil && !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
		for _, err := range reported() {
			t.Logf("server reported: %v", err)
		}
	})
}

// nbdURI is the libnbd/qemu URI of the default export on sock.
func nbdURI(sock string) string {
	return "nbd+unix:///?" + url.Values{"socket": {sock}}.Encode()
}

// checkNBDLeaks fails the test if, once its other cleanups ran, a goroutine of
// the NBD server is still running or a socket opened during the test is still
// open; and (through e2e.CheckLeaks) if a mount or NBD device is left behind.
func checkNBDLeaks(t testing.TB) {
	t.Helper()
	e2e.CheckLeaks(t)
	before := openSockets()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			g := nbdGoroutines()
			s := newSockets(before, openSockets())
			if len(g) == 0 && len(s) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, x := range g {
					t.Errorf("leaked goroutine:\n%s", x)
				}
				for _, x := range s {
					t.Errorf("leaked socket: %s", x)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// nbdGoroutines returns the stacks of goroutines running server code.
func nbdGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range []string{"nbd.(*Server)", "nbd.(*nbdConn)", "nbd.(*KernelDevice)"} {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func openSockets() map[string]bool {
	m := make(map[string]bool)
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(l, "socket:") {
			m[e.Name()+" "+l] = true
		}
	}
	return m
}

func newSockets(before, after map[string]bool) []string {
	var out []string
	for s := range after {
		if !before[s] {
			out = append(out, s)
		}
	}
	return out
}

// testClient is a minimal NBD client for driving the server byte by byte.
type testClient struct {
	conn  net.Conn
	r     *bufio.Reader
	size  uint64
	flags uint16
	min   uint32 // minimum block size from NBD_INFO_BLOCK_SIZE
	pref  uint32
	max   uint32
	name  string
	desc  string
	wmu   sync.Mutex
}

func dialNBD(t testing.TB, sock string) *testClient {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return &testClient{conn: conn, r: bufio.NewReader(conn)}
}

// hello reads the server's greeting and sends the client flags.
func (c *testClient) hello(clientFlags uint32) error {
	var b [18]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(b[0:]) != nbdMagic || binary.BigEndian.Uint64(b[8:]) != nbdOptMagic {
		return fmt.Errorf("bad greeting %x", b)
	}
	if f := binary.BigEndian.Uint16(b[16:]); f != nbdFlagFixedNewstyle|nbdFlagNoZeroes {
		return fmt.Errorf("handshake flags %#x", f)
	}
	return binary.Write(c.conn, binary.BigEndian, clientFlags)
}

func (c *testClient) sendOption(opt uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := c.conn.Write(append(b, data...))
	return err
}

type optReply struct {
	opt, typ uint32
	data     []byte
}

func (c *testClient) readOptReply() (optReply, error) {
	var b [20]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return optReply{}, err
	}
	if binary.BigEndian.Uint64(b[0:]) != nbdOptReplyMagic {
		return optReply{}, fmt.Errorf("bad option reply magic %x", b[:8])
	}
	r := optReply{opt: binary.BigEndian.Uint32(b[8:]), typ: binary.BigEndian.Uint32(b[12:])}
	n := binary.BigEndian.Uint32(b[16:])
	if n > 1<<16 {
		return r, fmt.Errorf("option reply of %d bytes", n)
	}
	r.data = make([]byte, n)
	_, err := io.ReadFull(c.r, r.data)
	return r, err
}

func infoRequest(name string, infos ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

// info sends NBD_OPT_INFO or NBD_OPT_GO and reads the replies up to the final
// one, whose type it returns.
func (c *testClient) info(opt uint32, name string, infos ...uint16) (uint32, error) {
	if err := c.sendOption(opt, infoRequest(name, infos...)); err != nil {
		return 0, err
	}
	for {
		r, err := c.readOptReply()
		if err != nil {
			return 0, err
		}
		if r.opt != opt {
			return 0, fmt.Errorf("reply for option %d to option %d", r.opt, opt)
		}
		if r.typ != nbdRepInfo {
			return r.typ, nil
		}
		if len(r.data) < 2 {
			return 0, fmt.Errorf("short NBD_REP_INFO")
		}
		switch typ := binary.BigEndian.Uint16(r.data); typ {
		case nbdInfoExport:
			if len(r.data) != 12 {
				return 0, fmt.Errorf("NBD_INFO_EXPORT of %d bytes", len(r.data))
			}
			c.size = binary.BigEndian.Uint64(r.data[2:])
			c.flags = binary.BigEndian.Uint16(r.data[10:])
		case nbdInfoBlockSize:
			if len(r.data) != 14 {
				return 0, fmt.Errorf("NBD_INFO_BLOCK_SIZE of %d bytes", len(r.data))
			}
			c.min = binary.BigEndian.Uint32(r.data[2:])
			c.pref = binary.BigEndian.Uint32(r.data[6:])
			c.max = binary.BigEndian.Uint32(r.data[10:])
		case nbdInfoName:
			c.name = string(r.data[2:])
		case nbdInfoDescription:
			c.desc = string(r.data[2:])
		default:
			return 0, fmt.Errorf("unknown info type %d", typ)
		}
	}
}

// connect dials, greets and enters transmission with NBD_OPT_GO, asking for
// block sizes (and so agreeing to honour them) if blockSizes is set.
func connect(t testing.TB, sock string, blockSizes bool) *testClient {
	t.Helper()
	c := dialNBD(t, sock)
	if err := c.hello(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes); err != nil {
		t.Fatal(err)
	}
	infos := []uint16{nbdInfoName, nbdInfoDescription}
	if blockSizes {
		infos = append(infos, nbdInfoBlockSize)
	}
	typ, err := c.info(nbdOptGo, "", infos...)
	if err != nil {
		t.Fatal(err)
	}
	if typ != nbdRepAck {
		t.Fatalf("NBD_OPT_GO: reply type %#x", typ)
	}
	return c
}

func (c *testClient) send(typ, flags uint16, handle, off uint64, length uint32, payload []byte) error {
	var b [28]byte
	binary.BigEndian.PutUint32(b[0:], nbdRequestMagic)
	binary.BigEndian.PutUint16(b[4:], flags)
	binary.BigEndian.PutUint16(b[6:], typ)
	binary.BigEndian.PutUint64(b[8:], handle)
	binary.BigEndian.PutUint64(b[16:], off)
	binary.BigEndian.PutUint32(b[24:], length)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	bufs := net.Buffers{b[:], payload}
	_, err := bufs.WriteTo(c.conn)
	return err
}

// recv reads one simple reply header.
func (c *testClient) recv() (handle uint64, errno uint32, err error) {
	var b [16]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return 0, 0, err
	}
	if m := binary.BigEndian.Uint32(b[0:]); m != nbdSimpleReplyMagic {
		return 0, 0, fmt.Errorf("reply magic %#x", m)
	}
	return binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint32(b[4:]), nil
}

// do sends one request and waits for its reply; for a successful READ it reads
// length bytes of payload.
func (c *testClient) do(typ, flags uint16, off uint64, length uint32, payload []byte) (uint32, []byte, error) {
	const h = 0x1234_5678_9abc_def0
	if err := c.send(typ, flags, h, off, length, payload); err != nil {
		return 0, nil, err
	}
	handle, errno, err := c.recv()
	if err != nil {
		return 0, nil, err
	}
	if handle != h {
		return 0, nil, fmt.Errorf("reply handle %#x, want %#x", handle, h)
	}
	var data []byte
	if typ == nbdCmdRead && errno == 0 {
		data = make([]byte, length)
		if _, err := io.ReadFull(c.r, data); err != nil {
			return 0, nil, err
		}
	}
	return errno, data, nil
}

func (c *testClient) read(off uint64, n uint32) (uint32, []byte, error) {
	return c.do(nbdCmdRead, 0, off, n, nil)
}

func (c *testClient) write(off uint64, p []byte, flags uint16) (uint32, error) {
	errno, _, err := c.do(nbdCmdWrite, flags, off, uint32(len(p)), p)
	return errno, err
}

func (c *testClient) flush() (uint32, error) {
	errno, _, err := c.do(nbdCmdFlush, 0, 0, 0, nil)
	return errno, err
}

func (c *testClient) disc() error {
	return c.send(nbdCmdDisc, 0, 0, 0, 0, nil)
}

// expectClosed checks that the server closed the connection: the next read
// sees EOF (or a reset), not a timeout.
func (c *testClient) expectClosed(t testing.TB) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	if err == nil {
		t.Fatalf("connection still open: read a byte")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 10s")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection ended with %v, want EOF", err)
	}
}

func mustErrno(t testing.TB, what string, got uint32, err error, want uint32) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: error %d, want %d", what, got, want)
	}
}
