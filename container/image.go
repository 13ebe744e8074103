package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
)

// imageChunk is the unit of Import and Export.
const imageChunk = 1 << 20

// OpenImage opens a raw disk image or block device for Import and returns its
// size rounded up to whole sectors of sectorSize.
func OpenImage(path string, sectorSize int) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory, not a disk image", path)
	}
	size, err := f.Seek(0, io.SeekEnd) // also the size of a block device
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if size == 0 {
		f.Close()
		return nil, 0, fmt.Errorf("%s is empty", path)
	}
	ss := int64(sectorSize)
	return f, (size + ss - 1) / ss * ss, nil
}

// Import fills the volume with src, from the start; the end of the last
// sector is padded with zeros. progress, if not nil, is told how far it got.
func (v *Volume) Import(ctx context.Context, src io.Reader, progress func(done, total int64)) error {
	buf := make([]byte, imageChunk)
	defer clear(buf)
	size := v.Size()
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), size-off)]
		n, err := io.ReadFull(src, b)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			clear(b[n:]) // the padding of the last sector
		} else if err != nil {
			return fmt.Errorf("reading the image: %w", err)
		}
		if _, err := v.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
		if progress != nil {
			progress(off, size)
		}
	}
	return nil
}

// Export copies the plaintext of the whole volume to w. When w is a regular
// file, chunks of zeros are skipped, leaving holes, and the file is sized at
// the end. progress, if not nil, is told how far it got.
func (v *Volume) Export(ctx context.Context, w io.Writer, progress func(done, total int64)) error {
	buf := make([]byte, imageChunk)
	defer clear(buf)
	zero := make([]byte, imageChunk)
	size := v.Size()
	f, sparse := w.(*os.File)
	if sparse {
		st, err := f.Stat()
		sparse = err == nil && st.Mode().IsRegular()
	}
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(imageChunk, size-off)]
		if _, err := v.ReadAt(b, off); err != nil && err != io.EOF {
			return err
		}
		if sparse && bytes.Equal(b, zero[:len(b)]) {
			if _, err := f.Seek(int64(len(b)), io.SeekCurrent); err != nil {
				return err
			}
		} else if _, err := w.Write(b); err != nil {
			return err
		}
		off += int64(len(b))
		if progress != nil {
			progress(off, size)
		}
	}
	if sparse {
		return f.Truncate(size)
	}
	return nil
}
