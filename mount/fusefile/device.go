package fusefile

import "io"

// Device is what a File serves: cryptvol's decrypted volumes, or an
// in-memory device in tests.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every completed write durable.
	Sync() error
	// Size is the file size in bytes, a multiple of SectorSize.
	Size() int64
	// SectorSize is the device's block size (512 or 4096).
	SectorSize() int
}

// inPlaceWriter is implemented by a Device that can write from a buffer it
// may overwrite (cryptvol's volumes encrypt in it), as FUSE WRITE requests
// are: go-fuse's buffers are done with once the write returns.
type inPlaceWriter interface {
	WriteAtInPlace(p []byte, off int64) (int, error)
}

// writeOwned writes p, which the caller owns and will not read again, in
// place if dev can.
func writeOwned(dev Device, p []byte, off int64) (int, error) {
	if w, ok := dev.(inPlaceWriter); ok {
		return w.WriteAtInPlace(p, off)
	}
	return dev.WriteAt(p, off)
}
