package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptvol/cryptvol/container"
)

// nbdAttachment is the kernel NBD path of the background server: the volume
// served by our NBD server to the kernel's /dev/nbdN.
type nbdAttachment struct {
	srv *NBDServer
	dev *NBDKernelDevice
}

func attachKernelNBD(vol *container.Volume, cfg ServerConfig) (attachment, error) {
	if _, err := os.Stat("/dev/nbd0"); err != nil {
		return nil, ErrNoKernelNBD
	}
	srv, err := NewNBDServer(vol, NBDOptions{
		Name: cfg.ID, Description: cfg.File, ReadOnly: cfg.ReadOnly, AllowDiscard: cfg.AllowDiscard,
		OnError: func(err error) { cfg.Log("nbd: %v", err) },
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := srv.AttachKernel(ctx, NBDKernelOptions{Connections: 2})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &nbdAttachment{srv: srv, dev: dev}, nil
}

func (a *nbdAttachment) DevicePath() string { return a.dev.Path() }

// Close disconnects the kernel device and stops the server; it refuses with
// ErrDeviceInUse while a filesystem on the device is alive.
func (a *nbdAttachment) Close() error {
	if err := deviceUnused(a.dev.Path()); err != nil {
		return err
	}
	return errors.Join(a.dev.Detach(), a.srv.Close())
}

// deviceUnused fails with ErrDeviceInUse if the block device is claimed
// exclusively, as a mounted (or lazily unmounted, still busy) filesystem does.
func deviceUnused(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err == nil {
		f.Close()
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%s: %w", path, ErrDeviceInUse)
	}
	return err
}

// disconnectKernelNBD disconnects a /dev/nbdN left connected by a server that
// died (its socket is gone, so the kernel only needs to be told to let go).
func disconnectKernelNBD(dev string) error {
	if err := deviceUnused(dev); err != nil {
		return err
	}
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nbd: %w", err)
	}
	defer unix.Close(fd)
	ioctl(fd, nbdIoctlDisconnect)
	ioctl(fd, nbdIoctlClearSock)
	return nil
}
