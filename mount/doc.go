// Package mount exposes an open vault to the system and runs the background
// server that holds its keys.
//
// `cryptvol open` unlocks a vault in the foreground and calls Start, which
// starts this same program again as the background server (RunServer, behind
// the hidden command ServerCommand) and hands it the configuration as one
// JSON message and the master key over pipes. The server hardens itself (no
// core dumps, memory locked), opens the vault, records it in the Registry
// before attaching anything (so a crash half-way is always found and cleaned
// up), exposes it — as root, a kernel block device: a loop device over a
// private FUSE file (attachLoop: packages fusefile and loopdev) or a /dev/nbdN
// served by package nbd, whose filesystem the kernel mounts (package fsys);
// as anyone, the fuse path: the private FUSE file alone, whose filesystem a
// userspace driver mounts (attachFUSE: packages fusefile and userfs) — and
// answers status and close requests on a control socket until Close, or a
// signal, closes it. Each user has registries of their own (registries.go);
// a server that may not lock all its memory locks its buffers of decrypted
// data within the limit (memlock.go).
// Close is the other end of that socket; a server that died is cleaned up by
// CleanupStale. Both ends of each protocol live here.
//
// The sub-packages own one concern each and import only what is below them:
//
//   - nbd: the NBD server and the kernel NBD client attach; it imports no
//     cryptvol package, only its own small Device interface.
//   - fsys: filesystems on block devices: the catalogue of filesystems,
//     mkfs, probe, mount, unmount, mountinfo, busy holders, and whether a
//     device is claimed.
//   - loopdev: loop devices (attach with direct I/O, detach); uses fsys.
//   - fusefile: a Device served as the one file of a private FUSE mount;
//     uses fsys.
//   - userfs: a userspace filesystem driver (fuse2fs, fusefat) mounting the
//     filesystem in an image file; uses fsys.
//
// Nothing here prints, prompts or exits: the CLI does.
package mount
