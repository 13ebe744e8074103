package nbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cryptvol/cryptvol/mount/nbd/nbdtest"
)

var sectorSizes = []int{512, 4096}

func TestNBDGo(t *testing.T) {
	for _, sector := range sectorSizes {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			dev := nbdtest.New(1<<20, sector)
			_, sock := startNBD(t, dev, Options{Name: "vol", Description: "a test volume"})
			c := connect(t, sock, true)
			want := nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagSendFUA | nbdFlagCanMultiConn | nbdFlagSendWriteZeroes
			if c.size != 1<<20 || c.flags != want {
				t.Errorf("size %d flags %#x, want %d %#x", c.size, c.flags, 1<<20, want)
			}
			if c.min != uint32(sector) || c.pref != uint32(max(4096, sector)) || c.max != 32<<20 {
				t.Errorf("block sizes %d/%d/%d", c.min, c.pref, c.max)
			}
			if c.name != "vol" || c.desc != "a test volume" {
				t.Errorf("name %q description %q", c.name, c.desc)
			}
			if err := c.disc(); err != nil {
				t.Fatal(err)
			}
			c.expectClosed(t)
		})
	}
}

func TestNBDExportName(t *testing.T) {
	dev := nbdtest.New(1<<20, 512)
	_, sock := startNBD(t, dev, Options{Name: "vol", ReadOnly: true})
	for _, tc := range []struct {
		name     string
		noZeroes bool
	}{{"", false}, {"vol", true}} {
		c := dialNBD(t, sock)
		flags := nbdFlagCFixedNewstyle
		if tc.noZeroes {
			flags |= nbdFlagCNoZeroes
		}
		if err := c.hello(flags); err != nil {
			t.Fatal(err)
		}
		if err := c.sendOption(nbdOptExportName, []byte(tc.name)); err != nil {
			t.Fatal(err)
		}
		n := 10
		if !tc.noZeroes {
			n += 124
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c.r, b); err != nil {
			t.Fatal(err)
		}
		if size, flags := binary.BigEndian.Uint64(b), binary.BigEndian.Uint16(b[8:]); size != 1<<20 || flags&nbdFlagReadOnly == 0 {
			t.Errorf("export %q: size %d flags %#x", tc.name, size, flags)
		}
		if !bytes.Equal(b[10:], make([]byte, n-10)) {
			t.Errorf("padding is not zeroes")
		}
		// Transmission works right after, with nothing in between.
		errno, data, err := c.read(0, 512)
		mustErrno(t, "read", errno, err, 0)
		if len(data) != 512 {
			t.Fatalf("read %d bytes", len(data))
		}
		if errno, err := c.write(0, data, 0); err != nil || errno != nbdEPERM {
			t.Fatalf("write on read-only export: %d %v", errno, err)
		}
		c.disc()
		c.expectClosed(t)
	}

	// An unknown name cannot be refused with an error: the session ends.
	c := dialNBD(t, sock)
	if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	c.sendOption(nbdOptExportName, []byte("other"))
	c.expectClosed(t)
}

func TestNBDOptionHaggling(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, sock := startNBD(t, dev, Options{Name: "vol"})
	c := dialNBD(t, sock)
	if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, opt uint32, data []byte, want uint32) {
		t.Helper()
		if err := c.sendOption(opt, data); err != nil {
			t.Fatal(err)
		}
		r, err := c.readOptReply()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.opt != opt || r.typ != want {
			t.Fatalf("%s: reply option %d type %#x, want %d %#x", what, r.opt, r.typ, opt, want)
		}
	}
	expect("STARTTLS without TLS configured", nbdOptStartTLS, nil, nbdRepErrPolicy)
	for _, opt := range []uint32{nbdOptStructuredReply, nbdOptListMetaContext, nbdOptSetMetaContext, 11, 4, 0, 1000, 1 << 31} {
		expect(fmt.Sprintf("option %d", opt), opt, []byte("some data"), nbdRepErrUnsup)
	}
	expect("LIST with data", nbdOptList, []byte{1}, nbdRepErrInvalid)
	expect("INFO too short", nbdOptInfo, []byte{0, 0, 0}, nbdRepErrInvalid)
	expect("INFO name too long", nbdOptInfo, []byte{0, 0, 1, 0, 0, 0}, nbdRepErrInvalid)
	expect("INFO count mismatch", nbdOptInfo, append(infoRequest("", 1), 0), nbdRepErrInvalid)
	expect("INFO unknown export", nbdOptInfo, infoRequest("other"), nbdRepErrUnknown)
	expect("GO unknown export", nbdOptGo, infoRequest("other"), nbdRepErrUnknown)

	// LIST: one NBD_REP_SERVER with the name, then ACK.
	if err := c.sendOption(nbdOptList, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.readOptReply()
	if err != nil || r.typ != nbdRepServer || string(r.data) != "\x00\x00\x00\x03vol" {
		t.Fatalf("LIST: %+v %v", r, err)
	}
	if r, err = c.readOptReply(); err != nil || r.typ != nbdRepAck {
		t.Fatalf("LIST end: %+v %v", r, err)
	}
	// INFO for the named export, unknown information requests ignored.
	if typ, err := c.info(nbdOptInfo, "vol", 1000, nbdInfoBlockSize); err != nil || typ != nbdRepAck {
		t.Fatalf("INFO: %#x %v", typ, err)
	}
	if c.size != 1<<20 || c.min != 4096 {
		t.Fatalf("INFO: size %d min block %d", c.size, c.min)
	}
	expect("ABORT", nbdOptAbort, nil, nbdRepAck)
	c.expectClosed(t)
}

func TestNBDNegotiationViolations(t *testing.T) {
	dev := nbdtest.New(1<<20, 512)
	_, sock := startNBD(t, dev, Options{})
	t.Run("unknown client flags", func(t *testing.T) {
		c := dialNBD(t, sock)
		if err := c.hello(1 << 5); err != nil {
			t.Fatal(err)
		}
		c.expectClosed(t)
	})
	t.Run("bad option magic", func(t *testing.T) {
		c := dialNBD(t, sock)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		c.conn.Write(make([]byte, 16))
		c.expectClosed(t)
	})
	t.Run("oversized option", func(t *testing.T) {
		c := dialNBD(t, sock)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		b := binary.BigEndian.AppendUint64(nil, nbdOptMagic)
		b = binary.BigEndian.AppendUint32(b, nbdOptGo)
		b = binary.BigEndian.AppendUint32(b, 0xffff_ffff)
		c.conn.Write(b)
		c.expectClosed(t)
	})
	t.Run("hang up", func(t *testing.T) {
		c := dialNBD(t, sock)
		if err := c.hello(nbdFlagCFixedNewstyle); err != nil {
			t.Fatal(err)
		}
		c.conn.Close()
	})
}

func TestNBDReadWrite(t *testing.T) {
	for _, sector := range sectorSizes {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			dev := nbdtest.New(1<<20, sector)
			_, sock := startNBD(t, dev, Options{})
			// Without block size negotiation, unaligned requests are served.
			c := connect(t, sock, false)
			want := make([]byte, 1<<20)
			for _, w := range []struct{ off, n int }{{0, 4096}, {1, 1}, {511, 3000}, {4095, 9000}, {1<<20 - 700, 700}, {100000, 0}} {
				p := make([]byte, w.n)
				rand.Read(p)
				copy(want[w.off:], p)
				errno, err := c.write(uint64(w.off), p, 0)
				mustErrno(t, fmt.Sprintf("write %+v", w), errno, err, 0)
			}
			for _, r := range []struct{ off, n int }{{0, 1 << 20}, {3, 5}, {4000, 5000}, {1 << 20, 0}} {
				errno, got, err := c.read(uint64(r.off), uint32(r.n))
				mustErrno(t, fmt.Sprintf("read %+v", r), errno, err, 0)
				if !bytes.Equal(got, want[r.off:r.off+r.n]) {
					t.Fatalf("read %+v: wrong data", r)
				}
			}
			if data := dev.Contents(); !bytes.Equal(data, want) {
				t.Fatalf("device contents differ")
			}
			c.disc()
			c.expectClosed(t)
			if dev.Syncs() == 0 {
				t.Errorf("NBD_CMD_DISC after writes did not sync")
			}
		})
	}
}

// TestNBDBadRequests sends malformed or refused requests over a raw socket and
// checks each gets its NBD error while the connection stays usable.
func TestNBDBadRequests(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name       string
		opts       Options
		blockSizes bool
		typ, flags uint16
		off        uint64
		length     uint32
		payload    bool
		want       uint32
	}{
		{name: "read past end", typ: nbdCmdRead, off: size - 512, length: 1024, want: nbdEINVAL},
		{name: "read offset past end", typ: nbdCmdRead, off: size + 512, length: 512, want: nbdEINVAL},
		{name: "read offset overflow", typ: nbdCmdRead, off: 1<<64 - 512, length: 1024, want: nbdEINVAL},
		{name: "read over the maximum", typ: nbdCmdRead, off: 0, length: 64<<10 + 4096, want: nbdEINVAL},
		{name: "write past end", typ: nbdCmdWrite, off: size - 512, length: 1024, payload: true, want: nbdENOSPC},
		{name: "write offset overflow", typ: nbdCmdWrite, off: 1<<64 - 1, length: 2, payload: true, want: nbdENOSPC},
		{name: "write zeroes past end", typ: nbdCmdWriteZeroes, off: size, length: 512, want: nbdENOSPC},
		{name: "trim past end", opts: Options{AllowDiscard: true}, typ: nbdCmdTrim, off: size, length: 512, want: nbdEINVAL},
		{name: "misaligned read", blockSizes: true, typ: nbdCmdRead, off: 512, length: 4096, want: nbdEINVAL},
		{name: "misaligned read length", blockSizes: true, typ: nbdCmdRead, off: 0, length: 4000, want: nbdEINVAL},
		{name: "misaligned write", blockSizes: true, typ: nbdCmdWrite, off: 100, length: 4096, payload: true, want: nbdEINVAL},
		{name: "misaligned write zeroes", blockSizes: true, typ: nbdCmdWriteZeroes, off: 4096, length: 100, want: nbdEINVAL},
		{name: "unknown command", typ: 5, off: 0, length: 4096, want: nbdEINVAL},
		{name: "block status", typ: 7, off: 0, length: 4096, want: nbdEINVAL},
		{name: "unknown command 1000", typ: 1000, want: nbdEINVAL},
		{name: "unknown flag", typ: nbdCmdRead, flags: 1 << 7, length: 4096, want: nbdEINVAL},
		{name: "DF without structured replies", typ: nbdCmdRead, flags: 1 << 2, length: 4096, want: nbdEINVAL},
		{name: "no hole on write", typ: nbdCmdWrite, flags: nbdCmdFlagNoHole, length: 4096, payload: true, want: nbdEINVAL},
		{name: "fast zero not advertised", typ: nbdCmdWriteZeroes, flags: 1 << 4, length: 4096, want: nbdEINVAL},
		{name: "trim not advertised", typ: nbdCmdTrim, length: 4096, want: nbdEINVAL},
		{name: "write read-only", opts: Options{ReadOnly: true}, typ: nbdCmdWrite, length: 4096, payload: true, want: nbdEPERM},
		{name: "write zeroes read-only", opts: Options{ReadOnly: true}, typ: nbdCmdWriteZeroes, length: 4096, want: nbdEPERM},
		{name: "trim read-only", opts: Options{ReadOnly: true}, typ: nbdCmdTrim, length: 4096, want: nbdEPERM},
		{name: "write past end read-only", opts: Options{ReadOnly: true}, typ: nbdCmdWrite, off: size, length: 4096, payload: true, want: nbdEPERM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dev Device = nbdtest.New(size, 4096)
			if tc.opts.AllowDiscard {
				dev = nbdtest.Discarding{Device: dev.(*nbdtest.Device)}
			}
			// A 64 KiB maximum stands in for 32 MiB, to keep the device small.
			_, sock := startNBDWith(t, dev, tc.opts, func(s *Server) { s.maxRequest = 64 << 10 })
			c := connect(t, sock, tc.blockSizes)
			if tc.blockSizes && c.max != 64<<10 {
				t.Fatalf("maximum block size %d", c.max)
			}
			var payload []byte
			if tc.payload {
				payload = make([]byte, tc.length)
			}
			errno, data, err := c.do(tc.typ, tc.flags, tc.off, tc.length, payload)
			mustErrno(t, tc.name, errno, err, tc.want)
			if data != nil {
				t.Fatalf("error reply with payload")
			}
			// The stream is still in step: a good request works.
			errno, data, err = c.read(4096, 4096)
			mustErrno(t, "read after", errno, err, 0)
			if len(data) != 4096 {
				t.Fatalf("read after: %d bytes", len(data))
			}
			c.disc()
			c.expectClosed(t)
		})
	}
}

// TestNBDHardDisconnects covers requests after which the stream cannot be
// trusted or resynchronised: the server must drop the connection, and only it.
func TestNBDHardDisconnects(t *testing.T) {
	dev := nbdtest.New(1<<20, 512)
	srv, sock := startNBD(t, dev, Options{})
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"bad magic", make([]byte, 28)},
		{"old request magic", binary.BigEndian.AppendUint32(nil, 0x12560953)},
		{"write over 32 MiB", func() []byte {
			b := binary.BigEndian.AppendUint32(nil, nbdRequestMagic)
			b = binary.BigEndian.AppendUint16(b, 0)
			b = binary.BigEndian.AppendUint16(b, nbdCmdWrite)
			b = binary.BigEndian.AppendUint64(b, 1)
			b = binary.BigEndian.AppendUint64(b, 0)
			return binary.BigEndian.AppendUint32(b, 32<<20+1)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, sock, false)
			other := connect(t, sock, false)
			if len(tc.req) < 28 {
				tc.req = append(tc.req, make([]byte, 28-len(tc.req))...)
			}
			c.conn.Write(tc.req)
			c.expectClosed(t)
			errno, _, err := other.read(0, 512)
			mustErrno(t, "other connection", errno, err, 0)
			other.disc()
			other.expectClosed(t)
		})
	}
	_ = srv
}

func TestNBDDeviceErrors(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, true)
	eio := errors.New("sector 3 is damaged")
	dev.SetErrors(eio, eio, eio)
	errno, data, err := c.read(0, 8192)
	mustErrno(t, "read", errno, err, nbdEIO)
	if data != nil {
		t.Fatal("failed read sent a payload")
	}
	errno, err = c.write(0, make([]byte, 4096), 0)
	mustErrno(t, "write", errno, err, nbdEIO)
	errno, err = c.flush()
	mustErrno(t, "flush", errno, err, nbdEIO)
	dev.SetErrors(nil, fmt.Errorf("pwrite: %w", syscall.ENOSPC), nil)
	errno, err = c.write(0, make([]byte, 4096), 0)
	mustErrno(t, "write ENOSPC", errno, err, nbdENOSPC)
	dev.SetErrors(nil, nil, fmt.Errorf("fsync: %w", syscall.EIO))
	errno, _, err = c.do(nbdCmdWrite, nbdCmdFlagFUA, 0, 4096, make([]byte, 4096))
	mustErrno(t, "FUA write with failing sync", errno, err, nbdEIO)
	dev.SetErrors(nil, nil, nil)
	errno, data, err = c.read(0, 8192)
	mustErrno(t, "read after errors", errno, err, 0)
	if len(data) != 8192 {
		t.Fatal("short read")
	}
	c.disc()
	c.expectClosed(t)
}

func TestNBDFlushAndFUA(t *testing.T) {
	dev := nbdtest.New(1<<20, 512)
	_, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, true)
	p := bytes.Repeat([]byte{0xab}, 4096)

	errno, err := c.write(0, p, 0)
	mustErrno(t, "write", errno, err, 0)
	if durable := dev.Durable(); bytes.Equal(durable[:4096], p) {
		t.Fatal("plain write was synced (test device broken?)")
	}
	errno, err = c.flush()
	mustErrno(t, "flush", errno, err, 0)
	if durable := dev.Durable(); !bytes.Equal(durable[:4096], p) {
		t.Fatal("flush did not make a replied write durable")
	}
	errno, err = c.write(8192, p, nbdCmdFlagFUA)
	mustErrno(t, "FUA write", errno, err, 0)
	if durable := dev.Durable(); !bytes.Equal(durable[8192:8192+4096], p) {
		t.Fatal("FUA write was not durable at its reply")
	}
	// FUA is accepted (and harmless) on any command.
	errno, _, err = c.do(nbdCmdRead, nbdCmdFlagFUA, 0, 512, nil)
	mustErrno(t, "FUA read", errno, err, 0)
	errno, _, err = c.do(nbdCmdFlush, nbdCmdFlagFUA, 0, 0, nil)
	mustErrno(t, "FUA flush", errno, err, 0)
}

// TestNBDMultiConnFlush checks the promise of NBD_FLAG_CAN_MULTI_CONN: a flush
// on one connection covers writes replied to on every other.
func TestNBDMultiConnFlush(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, sock := startNBD(t, dev, Options{})
	var clients []*testClient
	for range 4 {
		clients = append(clients, connect(t, sock, true))
	}
	for i, c := range clients[:3] {
		p := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		errno, err := c.write(uint64(i)*4096, p, 0)
		mustErrno(t, "write", errno, err, 0)
	}
	errno, err := clients[3].flush()
	mustErrno(t, "flush", errno, err, 0)
	durable := dev.Durable()
	for i := range 3 {
		if !bytes.Equal(durable[i*4096:(i+1)*4096], bytes.Repeat([]byte{byte(i + 1)}, 4096)) {
			t.Fatalf("write of connection %d not durable after a flush on connection 3", i)
		}
	}
}

// TestNBDConcurrentConnections has several connections each keep many
// requests in flight on disjoint regions, then read everything back.
func TestNBDConcurrentConnections(t *testing.T) {
	for _, sector := range sectorSizes {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			const conns, perConn, chunk = 4, 64, 16 << 10
			dev := nbdtest.New(conns*perConn*chunk, sector)
			_, sock := startNBD(t, dev, Options{MaxInFlight: 8})
			want := make([]byte, dev.Size())
			rand.Read(want)
			var clients []*testClient
			for range conns {
				clients = append(clients, connect(t, sock, true))
			}
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- pipeline(c, want, i*perConn*chunk, perConn, chunk)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if data := dev.Contents(); !bytes.Equal(data, want) {
				t.Fatal("device contents differ")
			}
			if n := dev.Conflicts(); n != 0 {
				t.Fatalf("%d overlapping device calls", n)
			}
		})
	}
}

// pipeline writes perConn chunks of want starting at base with all requests in
// flight at once (from a second goroutine), then reads them back the same way
// and compares.
func pipeline(c *testClient, want []byte, base, count, chunk int) error {
	for _, typ := range []uint16{nbdCmdWrite, nbdCmdRead} {
		sent := make(chan error, 1)
		go func() {
			for i := range count {
				off := base + i*chunk
				var p []byte
				if typ == nbdCmdWrite {
					p = want[off : off+chunk]
				}
				if err := c.send(typ, 0, uint64(i), uint64(off), uint32(chunk), p); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		seen := make(map[uint64]bool)
		for range count {
			h, errno, err := c.recv()
			if err != nil {
				return err
			}
			if errno != 0 || h >= uint64(count) || seen[h] {
				return fmt.Errorf("reply errno %d handle %d (seen %v)", errno, h, seen[h])
			}
			seen[h] = true
			if typ == nbdCmdRead {
				got := make([]byte, chunk)
				if _, err := io.ReadFull(c.r, got); err != nil {
					return err
				}
				off := base + int(h)*chunk
				if !bytes.Equal(got, want[off:off+chunk]) {
					return fmt.Errorf("read back of chunk %d differs", h)
				}
			}
		}
		if err := <-sent; err != nil {
			return err
		}
	}
	return nil
}

// TestNBDOverlappingRequests sends overlapping, unaligned writes and reads with
// all of them in flight: the device must never see two conflicting calls at
// once, and the last write must win.
func TestNBDOverlappingRequests(t *testing.T) {
	dev := nbdtest.New(64<<10, 4096)
	_, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, false)
	const n = 200
	go func() {
		for i := range n {
			p := bytes.Repeat([]byte{byte(i)}, 1000+i)
			typ := uint16(nbdCmdWrite)
			if i%3 == 2 {
				typ, p = nbdCmdRead, nil
			}
			c.send(typ, 0, uint64(i), uint64(100*(i%7)), uint32(1000+i), p)
		}
	}()
	for range n {
		h, errno, err := c.recv()
		if err != nil || errno != 0 {
			t.Fatalf("reply %d: %d %v", h, errno, err)
		}
		if h%3 == 2 {
			if _, err := io.CopyN(io.Discard, c.r, int64(1000+h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if k := dev.Conflicts(); k != 0 {
		t.Fatalf("%d conflicting device calls ran at once", k)
	}
	last := n - 1
	for last%3 == 2 {
		last--
	}
	data := dev.Contents()
	off := 100 * (last % 7)
	if !bytes.Equal(data[off:off+1000+last], bytes.Repeat([]byte{byte(last)}, 1000+last)) {
		t.Fatal("writes were not applied in arrival order")
	}
}

func TestNBDWriteZeroesAndTrim(t *testing.T) {
	for _, sector := range sectorSizes {
		t.Run(fmt.Sprint(sector), func(t *testing.T) {
			mem := nbdtest.New(4<<20, sector)
			dev := nbdtest.Discarding{Device: mem}
			_, sock := startNBD(t, dev, Options{AllowDiscard: true})
			c := connect(t, sock, false)
			if c.flags&nbdFlagSendTrim == 0 || c.flags&nbdFlagSendWriteZeroes == 0 {
				t.Fatalf("flags %#x", c.flags)
			}
			ones := bytes.Repeat([]byte{1}, 4<<20)
			errno, err := c.write(0, ones, 0)
			mustErrno(t, "write", errno, err, 0)

			// Write zeroes, longer than one chunk, unaligned, with FUA.
			syncs := mem.Syncs()
			errno, _, err = c.do(nbdCmdWriteZeroes, nbdCmdFlagFUA, 1000, 3<<20, nil)
			mustErrno(t, "write zeroes", errno, err, 0)
			errno, _, err = c.do(nbdCmdWriteZeroes, nbdCmdFlagNoHole, 3<<20+1000, 10, nil)
			mustErrno(t, "write zeroes no hole", errno, err, 0)
			if mem.Syncs() == syncs {
				t.Error("FUA write zeroes did not sync")
			}
			data := mem.Contents()
			want := append([]byte(nil), ones...)
			clear(want[1000 : 1000+3<<20])
			clear(want[3<<20+1000 : 3<<20+1010])
			if !bytes.Equal(data, want) {
				t.Fatal("write zeroes: wrong contents")
			}
			if len(dev.Discards()) != 0 {
				t.Fatal("write zeroes discarded")
			}

			// Trim discards only the whole sectors inside the range.
			errno, _, err = c.do(nbdCmdTrim, 0, uint64(sector)+1, uint32(4*sector), nil)
			mustErrno(t, "trim", errno, err, 0)
			errno, _, err = c.do(nbdCmdTrim, 0, 1, uint32(sector), nil)
			mustErrno(t, "trim of no whole sector", errno, err, 0)
			got := fmt.Sprint(dev.Discards())
			if want := fmt.Sprint([][2]int64{{int64(2 * sector), int64(3 * sector)}}); got != want {
				t.Fatalf("discards %s, want %s", got, want)
			}
		})
	}
	if _, err := NewServer(nbdtest.New(1<<20, 512), Options{AllowDiscard: true}); err == nil {
		t.Error("AllowDiscard accepted for a device without Discard")
	}
}

func TestNBDServerOptionChecks(t *testing.T) {
	for _, tc := range []struct {
		dev  Device
		opts Options
	}{
		{nbdtest.New(1<<20, 1000), Options{}},
		{nbdtest.New(1<<20, 256), Options{}},
		{nbdtest.New(1<<20+512, 4096), Options{}},
		{nbdtest.New(1<<20, 512), Options{BufferBytes: 1 << 20}},
		{nbdtest.New(1<<20, 512), Options{Name: string(make([]byte, 4097))}},
	} {
		if _, err := NewServer(tc.dev, tc.opts); err == nil {
			t.Errorf("NewServer accepted sector %d size %d opts %+v", tc.dev.SectorSize(), tc.dev.Size(), tc.opts)
		}
	}
}

// TestNBDDiscFinishesInflight pipelines writes and a DISC right behind them:
// every write must land and be synced before the connection closes.
func TestNBDDiscFinishesInflight(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	_, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, true)
	want := make([]byte, 1<<20)
	rand.Read(want)
	for i := range 256 {
		off := i * 4096
		if err := c.send(nbdCmdWrite, 0, uint64(i), uint64(off), 4096, want[off:off+4096]); err != nil {
			t.Fatal(err)
		}
	}
	c.disc()
	for range 256 {
		if _, errno, err := c.recv(); err != nil || errno != 0 {
			t.Fatalf("reply: %d %v", errno, err)
		}
	}
	c.expectClosed(t)
	if durable := dev.Durable(); !bytes.Equal(durable, want) {
		t.Fatal("writes before NBD_CMD_DISC are not durable after it")
	}
}

// TestNBDCloseFinishesInflight closes the server while writes are blocked in
// the device: Close must wait for them, they must be replied to, and the
// data must be synced.
func TestNBDCloseFinishesInflight(t *testing.T) {
	dev := nbdtest.New(1<<20, 4096)
	release := dev.HoldWrites()
	srv, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, true)
	idle := dialNBD(t, sock) // a client still in option haggling
	if err := idle.hello(nbdFlagCFixedNewstyle); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := c.send(nbdCmdWrite, 0, uint64(i), uint64(i)*4096, 4096, bytes.Repeat([]byte{7}, 4096)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has all four in flight.
	for deadline := time.Now().Add(10 * time.Second); len(nbdGoroutinesIn("(*nbdConn).run")) < 4; {
		if time.Now().After(deadline) {
			t.Fatal("writes never reached the device")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned with writes in flight")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, errno, err := c.recv(); err != nil || errno != 0 {
			t.Fatalf("reply after Close: %d %v", errno, err)
		}
	}
	c.expectClosed(t)
	idle.expectClosed(t)
	if durable := dev.Durable(); !bytes.Equal(durable[:4*4096], bytes.Repeat([]byte{7}, 4*4096)) {
		t.Fatal("Close did not sync")
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("still accepting after Close")
	}
	if err := srv.ServeConn(context.Background(), nopConn{}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn after Close: %v", err)
	}
}

func nbdGoroutinesIn(frame string) []string {
	var out []string
	for _, g := range nbdGoroutines() {
		if bytes.Contains([]byte(g), []byte(frame)) {
			out = append(out, g)
		}
	}
	return out
}

// TestNBDCloseStuckClient: a client that sends requests but never reads the
// replies must not make Close hang.
func TestNBDCloseStuckClient(t *testing.T) {
	dev := nbdtest.New(32<<20, 4096)
	srv, sock := startNBD(t, dev, Options{})
	srv.shutdownGrace = 200 * time.Millisecond
	c := connect(t, sock, true)
	go func() {
		for i := range 64 {
			if c.send(nbdCmdRead, 0, uint64(i), 0, 4<<20, nil) != nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the grace period Close would wait forever; on a loaded machine
	// under the race detector it can take seconds even with it.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

// TestNBDContextCancel: cancelling Serve's context stops it and its
// connections, like Close.
func TestNBDContextCancel(t *testing.T) {
	checkNBDLeaks(t)
	dev := nbdtest.New(1<<20, 512)
	srv, err := NewServer(dev, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock := t.TempDir() + "/nbd.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c := connect(t, sock, false)
	errno, err := c.write(0, []byte("hello"), 0)
	mustErrno(t, "write", errno, err, 0)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	c.expectClosed(t)
	if dev.Syncs() == 0 {
		t.Error("connection that wrote ended without a sync")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNBDMemoryFlat runs sustained large writes and reads from several
// connections and checks the buffers never exceed their budget, nor the heap
// grow with the amount of traffic.
func TestNBDMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const budget = 40 << 20
	dev := nbdtest.New(32<<20, 4096)
	// The device allocates its storage as it is written to, and again when
	// it is synced: do both now, so that only the server's allocations are
	// counted below.
	dev.Set(make([]byte, dev.Size()), 0)
	dev.Sync()
	srv, sock := startNBD(t, dev, Options{BufferBytes: budget})
	payload := make([]byte, 4<<20)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peakHeld, peakHeap uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			peakHeld = max(peakHeld, uint64(srv.bufs.heldBytes()))
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		c := connect(t, sock, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() {
				for i := range 80 {
					typ := uint16(nbdCmdWrite)
					p := payload
					if i%2 == 1 {
						typ, p = nbdCmdRead, nil
					}
					if c.send(typ, 0, uint64(i), uint64(i%8)*(4<<20), 4<<20, p) != nil {
						return
					}
				}
			}()
			for range 80 {
				h, errno, err := c.recv()
				if err != nil || errno != 0 {
					t.Errorf("reply: %d %v", errno, err)
					return
				}
				if h%2 == 1 {
					io.CopyN(io.Discard, c.r, 4<<20)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	grown := peakHeap - min(peakHeap, before.HeapInuse)
	t.Logf("640 MiB moved; peak buffer bytes %d MiB, allocated %d MiB, heap grew by %d MiB",
		peakHeld>>20, allocated>>20, grown>>20)
	if peakHeld > budget {
		t.Errorf("buffers held %d bytes, over the budget of %d", peakHeld, budget)
	}
	// Buffers are reused: what is allocated is the budget plus a little,
	// however much traffic goes through.
	if limit := uint64(budget + 8<<20); allocated > limit {
		t.Errorf("allocated %d MiB while serving, over %d MiB", allocated>>20, limit>>20)
	}
	if limit := uint64(2 * budget); grown > limit {
		t.Errorf("heap grew by %d MiB, over %d MiB", grown>>20, limit>>20)
	}
}

// nopConn is a net.Conn that reads EOF and discards writes.
type nopConn struct{}

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return nil }
func (nopConn) RemoteAddr() net.Addr             { return nil }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// TestNBDWriteInPlace: WRITE and WRITE_ZEROES hand their buffers to an
// InPlaceWriter, and what it leaves in them never reaches the device.
func TestNBDWriteInPlace(t *testing.T) {
	mem := nbdtest.New(4<<20, 4096)
	dev := &nbdtest.Scribbling{Device: mem}
	_, sock := startNBD(t, dev, Options{})
	c := connect(t, sock, false)
	ones := bytes.Repeat([]byte{1}, 4<<20)
	errno, err := c.write(0, ones, 0)
	mustErrno(t, "write", errno, err, 0)
	// Three chunks of zeroes from one buffer, scribbled on after each.
	errno, _, err = c.do(nbdCmdWriteZeroes, 0, 1<<20, 3*zeroChunk, nil)
	mustErrno(t, "write zeroes", errno, err, 0)
	if dev.InPlace() < 4 {
		t.Fatalf("%d writes in place, want at least 4", dev.InPlace())
	}
	data := mem.Contents()
	want := append([]byte(nil), ones...)
	clear(want[1<<20 : 1<<20+3*zeroChunk])
	if !bytes.Equal(data, want) {
		t.Fatal("wrong contents after in-place writes")
	}
}
