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
