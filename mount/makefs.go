package mount

import (
	"errors"
	"os"

	"github.com/cryptvol/cryptvol/container"
	"github.com/cryptvol/cryptvol/mount/fsys"
)

// Owner is a user who should own the root directory of a new filesystem.
type Owner struct{ UID, GID int }

// MakeFilesystem makes a filesystem of type fstype (fsys.Names) in a new
// volume. Root makes it through the loop path, on a block device; if owner
// is not nil and the filesystem has owners, its root directory is given to
// owner (the user who ran `sudo cryptvol create`, who can then use the
// mounted vault without sudo). Any other user makes it through the fuse
// path, running mkfs on the FUSE file, with the root directory theirs.
func MakeFilesystem(reg Registry, vol *container.Volume, fstype string, owner *Owner) error {
	f, err := fsys.Lookup(fstype)
	if err != nil {
		return err
	}
	id := newID("create")
	if os.Geteuid() != 0 {
		if err := reg.Ensure(); err != nil {
			return err
		}
		att, err := attachFUSE(vol, loopOptions{BaseDir: reg.Dir, ID: id})
		if err != nil {
			return err
		}
		err = fsys.MkfsImage(att.DevicePath(), f.Name, fsys.ImageOptions{
			SectorSize: vol.SectorSize(), UID: os.Geteuid(), GID: os.Getegid()})
		return errors.Join(err, att.Close())
	}
	att, err := attachLoop(vol, loopOptions{BaseDir: reg.Dir, ID: id})
	if err != nil {
		return err
	}
	err = fsys.Mkfs(att.DevicePath(), f.Name, "")
	if err == nil && owner != nil && f.Owners {
		err = chownRoot(att.DevicePath(), f.Name, reg.scratchDir(id), *owner)
	}
	return errors.Join(err, att.Close())
}

// chownRoot mounts the filesystem on dev at dir (made for it, removed after)
// and gives its root directory to owner.
func chownRoot(dev, fstype, dir string, owner Owner) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := fsys.Mount(dev, dir, fstype, false, ""); err != nil {
		return err
	}
	err := os.Chown(dir, owner.UID, owner.GID)
	return errors.Join(err, fsys.Unmount(dir, false))
}
