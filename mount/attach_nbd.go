package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount/fsys"
	"github.com/cryptvol/cryptvol/mount/nbd"
)

// nbdAttachment is the kernel NBD path of the background server: the volume
// served by our NBD server to the kernel's /dev/nbdN.
type nbdAttachment struct {
	srv *nbd.Server
	dev *nbd.KernelDevice
}

func attachKernelNBD(vol *container.Volume, cfg Config, log func(string, ...any)) (attachment, error) {
	if err := nbd.KernelAvailable(); err != nil {
		return nil, err
	}
	srv, err := nbd.NewServer(vol, nbd.Options{
		Name: cfg.ID, ReadOnly: cfg.ReadOnly, AllowDiscard: cfg.AllowDiscard,
		OnError: func(err error) { log("nbd: %v", err) },
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dev, err := srv.AttachKernel(ctx, nbd.KernelOptions{Connections: 2})
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &nbdAttachment{srv: srv, dev: dev}, nil
}

func (a *nbdAttachment) DevicePath() string { return a.dev.Path() }

// Close disconnects the kernel device and stops the server; it refuses with
// fsys.ErrDeviceInUse while a filesystem on the device is alive.
func (a *nbdAttachment) Close() error {
	if err := fsys.CheckUnclaimed(a.dev.Path()); err != nil {
		return err
	}
	return errors.Join(a.dev.Detach(), a.srv.Close())
}

// sysBlock is where the kernel shows block devices.
const sysBlock = "/sys/block"

// nbdTask returns the id of the task serving the NBD device dev, as
// sysBlock/nbdN/pid shows it (the thread that runs NBD_DO_IT), or 0 if the
// device is not connected.
func nbdTask(sysBlock, dev string) (int, error) {
	b, err := os.ReadFile(filepath.Join(sysBlock, filepath.Base(dev), "pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("nbd: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("nbd: %s/pid: %q is not a task id", dev, b)
	}
	return pid, nil
}

// disconnectKernelNBD disconnects a /dev/nbdN left connected by a server that
// died, unless a filesystem on it is still alive.
func disconnectKernelNBD(dev string) error {
	if err := fsys.CheckUnclaimed(dev); err != nil {
		return err
	}
	return nbd.DisconnectKernel(dev)
}
