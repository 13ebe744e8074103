// Package mount exposes an open volume to the system: as an NBD export (for
// userspace clients and the kernel's /dev/nbdN), as one decrypted file in a
// private FUSE mount attached to a loop device, and as a mounted filesystem on
// either. It also runs the background server process that holds the keys.
package mount

import "io"

// Device is the decrypted block view the servers expose. *container.Volume
// implements it; tests use in-memory devices.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every completed write durable (fsync of the vault file).
	Sync() error
	// Size is the plaintext size in bytes, a multiple of SectorSize.
	Size() int64
	// SectorSize is the encryption unit (512 or 4096); aligned I/O avoids
	// read-modify-write.
	SectorSize() int
}

// InPlaceWriter is implemented by a Device that can write from a buffer it
// may overwrite (*container.Volume encrypts in it). The servers use it for
// buffers they own and are done with once the write returns: NBD WRITE
// payloads and FUSE WRITE requests.
type InPlaceWriter interface {
	// WriteAtInPlace is WriteAt, except that p's contents are undefined
	// afterwards.
	WriteAtInPlace(p []byte, off int64) (int, error)
}

// writeOwned writes p, which the caller owns and will not read again, in
// place if dev can.
func writeOwned(dev Device, p []byte, off int64) (int, error) {
	if w, ok := dev.(InPlaceWriter); ok {
		return w.WriteAtInPlace(p, off)
	}
	return dev.WriteAt(p, off)
}
