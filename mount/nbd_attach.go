package mount

import (
	"errors"

	"github.com/cryptvol/cryptvol/container"
)

func attachKernelNBD(vol *container.Volume, cfg ServerConfig) (attachment, error) {
	return nil, errors.New("not yet")
}

func disconnectKernelNBD(dev string) error { return errors.New("not yet") }
