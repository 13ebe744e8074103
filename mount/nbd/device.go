package nbd

import "io"

// Device is the block device a Server exports: cryptvol's decrypted volumes,
// or nbdtest.Device in tests.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every completed write durable.
	Sync() error
	// Size is the device size in bytes, a multiple of SectorSize.
	Size() int64
	// SectorSize is the device's block size (512 or 4096): the smallest
	// request the server advertises, and the unit aligned I/O avoids
	// read-modify-write in.
	SectorSize() int
}

// InPlaceWriter is implemented by a Device that can write from a buffer it
// may overwrite (cryptvol's volumes encrypt in it). The server uses it for
// WRITE payloads, which it owns and is done with once the write returns.
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
