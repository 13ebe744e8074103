package nbd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// ListenUnix listens on a Unix socket at path for Serve, created with mode
// 0600 (the umask is set around its creation, so there is no moment when
// others could connect). A stale socket there is replaced; a socket with a
// server listening, or any other file, is not. The listener's address is the
// absolute path.
func ListenUnix(path string) (net.Listener, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if st, err := os.Lstat(abs); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", abs)
		}
		if c, err := net.Dial("unix", abs); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another server is listening there", abs)
		}
		os.Remove(abs)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", abs)
	syscall.Umask(old)
	return l, err
}
