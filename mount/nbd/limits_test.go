package nbd

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

// Tests of the limits that keep one client, or many, from taking the server
// from the others: the per-connection share of the buffer pool, the write,
// handshake and idle timeouts, and the connection cap.

// TestNBDSlowReaderDoesNotStallOthers: a client that sends large READs and
// never reads the replies holds at most its share of the pool; another
// client's small read is served at once. (Before the share, the first client
// held the whole 128 MiB pool and the second waited for as long as it did.)
func TestNBDSlowReaderDoesNotStallOthers(t *testing.T) {
	dev := nbdtest.New(32<<20, 4096)
	srv, sock := startNBD(t, dev, Options{WriteTimeout: -1})
	srv.shutdownGrace = 200 * time.Millisecond
	slow := connect(t, sock, true)
	for i := range 8 {
		if err := slow.send(nbdCmdRead, 0, uint64(i), 0, 16<<20, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the slow client holds its share: two 16 MiB buffers.
	for deadline := time.Now().Add(10 * time.Second); srv.bufs.heldBytes() < 32<<20; {
		if time.Now().After(deadline) {
			t.Fatalf("the slow client's reads hold %d bytes after 10s", srv.bufs.heldBytes())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let it try for more

	other := connect(t, sock, true)
	other.conn.SetDeadline(time.Now().Add(time.Second))
	errno, _, err := other.read(0, 4096)
	mustErrno(t, "the other client's 4 KiB read (within a second)", errno, err, 0)
	if held, share := srv.bufs.heldBytes(), srv.opts.ConnBufferBytes; held > share+4096 {
		t.Errorf("pool holds %d bytes, over one share (%d) and the other client's 4 KiB", held, share)
	}
}

// TestNBDWriteTimeout: a client that takes no bytes of a reply for the write
// timeout is dropped, and the buffers of its requests go back to the pool.
func TestNBDWriteTimeout(t *testing.T) {
	dev := nbdtest.New(32<<20, 4096)
	reported := make(chan error, 16)
	srv, sock := startNBD(t, dev, Options{WriteTimeout: time.Second, OnError: func(err error) { reported <- err }})
	slow := connect(t, sock, true)
	for i := range 4 {
		if err := slow.send(nbdCmdRead, 0, uint64(i), 0, 16<<20, nil); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-reported:
		if !strings.Contains(err.Error(), "sending reply") || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("reported %v, want a reply that timed out", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("slow client still connected after 20s")
	}
	slow.expectEOF(t) // what the socket buffers hold, then EOF
	for deadline := time.Now().Add(10 * time.Second); srv.served() > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slow client's connection is still served")
		}
		time.Sleep(time.Millisecond)
	}
	// A reader that keeps taking bytes, however slowly, is not dropped.
	c := connect(t, sock, true)
	if err := c.send(nbdCmdRead, 0, 1, 0, 8<<20, nil); err != nil {
		t.Fatal(err)
	}
	if _, errno, err := c.recv(); err != nil || errno != 0 {
		t.Fatalf("reply: %d %v", errno, err)
	}
	for left := 8 << 20; left > 0; left -= 1 << 20 {
		time.Sleep(100 * time.Millisecond) // a chunk per 100 ms: each well within the timeout
		if _, err := io.CopyN(io.Discard, c.r, 1<<20); err != nil {
			t.Fatalf("slow but steady reader dropped: %v", err)
		}
	}
}

// expectEOF reads what the server sent until it closes the connection,
// which it must do within 10 s.
func (c *testClient) expectEOF(t testing.TB) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.r); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed: %v", err)
	}
}

// served counts the connections the server is serving.
func (s *Server) served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// TestNBDHandshakeTimeout: a client that does not finish negotiating in time
// is dropped, wherever it stopped; one that did is not.
func TestNBDHandshakeTimeout(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	srv, sock := startNBD(t, dev, Options{HandshakeTimeout: time.Second})
	done := connect(t, sock, true) // finished in time

	silent := dialNBD(t, sock) // never reads the greeting
	flags := dialNBD(t, sock)  // sends its flags, then nothing
	if err := flags.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	half := dialNBD(t, sock) // half an option
	if err := half.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	half.conn.Write(appendOption(nil, nbdOptGo, infoRequest(""))[:20])
	haggling := dialNBD(t, sock) // keeps asking for options, never goes
	if err := haggling.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := haggling.info(nbdOptInfo, ""); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	silent.expectEOF(t)
	flags.expectClosed(t)
	half.expectClosed(t)
	for deadline := time.Now().Add(10 * time.Second); srv.served() > 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections served, want only the one that finished negotiating", srv.served())
		}
		time.Sleep(10 * time.Millisecond)
	}
	errno, _, err := done.read(0, 4096)
	mustErrno(t, "read on a connection past the handshake timeout", errno, err, 0)
}

// TestNBDIdleTimeout: a connection in transmission with nothing in flight
// that sends nothing for the idle timeout is dropped; one whose request takes
// longer than that is not.
func TestNBDIdleTimeout(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	reported := make(chan error, 16)
	_, sock := startNBD(t, dev, Options{IdleTimeout: time.Second, OnError: func(err error) { reported <- err }})

	release := dev.HoldWrites()
	busy := connect(t, sock, true)
	if err := busy.send(nbdCmdWrite, 0, 1, 0, 4096, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	idle := connect(t, sock, true)
	idle.expectClosed(t)
	select {
	case err := <-reported:
		if !errors.Is(err, errIdle) {
			t.Errorf("reported %v, want idle", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not reported")
	}
	time.Sleep(1500 * time.Millisecond) // the busy connection's write is held past the timeout
	release()
	if _, errno, err := busy.recv(); err != nil || errno != 0 {
		t.Fatalf("busy connection: %d %v", errno, err)
	}
	errno, _, err := busy.read(0, 4096) // and it goes on
	mustErrno(t, "read after a long write", errno, err, 0)
}

// TestNBDMaxConnections: connections over the cap are closed at once and
// reported once; a place that frees up is taken again.
func TestNBDMaxConnections(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	var mu sync.Mutex
	var reports []error
	_, sock := startNBD(t, dev, Options{MaxConnections: 3, OnError: func(err error) {
		mu.Lock()
		reports = append(reports, err)
		mu.Unlock()
	}})
	var open []*testClient
	for range 3 {
		c := dialNBD(t, sock)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	for range 3 {
		over := dialNBD(t, sock)
		over.expectClosed(t)
	}
	mu.Lock()
	if len(reports) != 1 || !strings.Contains(reports[0].Error(), "3 connections are open") {
		t.Errorf("reports %v, want one refusal", reports)
	}
	mu.Unlock()
	open[0].conn.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c := dialNBD(t, sock)
		if c.hello(nbdFlagCFixedNewstyle) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no place after a connection ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverMemory is the heap and goroutine stacks in use, after a collection.
func serverMemory() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestNBDIdleConnectionsMemory: 2000 connections that connect and stop, half
// before sending their flags and half after, cost little each (no read
// buffer until transmission), and over the connection cap nothing at all.
// (Before, each held a 64 KiB read buffer: 136 MiB for 2000.)
func TestNBDIdleConnectionsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const n = 2000
	for _, tc := range []struct {
		name  string
		max   int
		bound uint64 // on the growth
	}{
		{"all admitted", 2 * n, n * 16 << 10},
		{"default cap", 0, defaultMaxConnections*16<<10 + n*512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := nbdtest.New(1<<20, 4096)
			srv, sock := startNBD(t, dev, Options{MaxConnections: tc.max, OnError: func(error) {}})
			before := serverMemory()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range n {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				if i%2 == 1 {
					c.Write([]byte{0, 0, 0, byte(nbdFlagCFixedNewstyle | nbdFlagCNoZeroes)})
				}
			}
			want := n
			if tc.max == 0 {
				want = defaultMaxConnections
			}
			for deadline := time.Now().Add(30 * time.Second); srv.served() < want; {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections served, want %d", srv.served(), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			if got := srv.served(); got != want {
				t.Errorf("%d connections served, want %d", got, want)
			}
			grown := max(serverMemory(), before) - before
			t.Logf("%d connections (%d served): heap and stacks grew by %d KiB, %d bytes each",
				n, want, grown>>10, grown/n)
			if grown > tc.bound {
				t.Errorf("grew by %d KiB, over %d KiB", grown>>10, tc.bound>>10)
			}
		})
	}
}
