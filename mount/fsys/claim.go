package fsys

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrDeviceInUse means a block device is claimed exclusively: a filesystem
// is mounted on it (perhaps lazily unmounted and still busy, or in another
// mount namespace), or a program holds it with O_EXCL.
var ErrDeviceInUse = errors.New("block device is in use")

// CheckUnclaimed returns nil if nothing holds the block device dev
// exclusively, and an error wrapping ErrDeviceInUse, naming where it is
// mounted, if something does. Opening with O_EXCL asks the kernel itself, so
// a mount in another namespace or one lazily unmounted but still busy counts
// too. It is the one such check: loop devices and NBD devices both detach
// only when it passes.
func CheckUnclaimed(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err == nil {
		f.Close()
		return nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return err
	}
	var where []string
	if ms, err := MountsOfDevice(dev); err == nil {
		for _, m := range ms {
			where = append(where, m.MountPoint)
		}
	}
	if len(where) == 0 {
		return fmt.Errorf("%s: %w (claimed by a program or a mount not visible here)", dev, ErrDeviceInUse)
	}
	return fmt.Errorf("%s: %w: mounted on %s (unmount first)", dev, ErrDeviceInUse, strings.Join(where, ", "))
}
