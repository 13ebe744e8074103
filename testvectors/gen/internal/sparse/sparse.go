// Package sparse copies the generators' base volumes into each hostile case
// without writing their zeros: the copies stay sparse, so hundreds of cases
// cost little disk.
package sparse

import (
	"io"
	"os"
)

// Copy copies the file from to a new file to (mode 0600, replacing one
// there), leaving holes where the source has 64 KiB runs of zeros.
func Copy(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer dst.Close()
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, err := dst.WriteAt(buf[:n], off); err != nil {
				return err
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := dst.Truncate(off); err != nil {
		return err
	}
	return dst.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
