package main

import (
	"sync"

	"github.com/cryptvol/cryptvol/mount"
)

var protectOnce sync.Once

// protectMemory applies, once per process, the memory policy of a command
// that handles a passphrase or keys (SECURITY.md "Key handling"): no core
// dumps, and every page locked where the process may lock that much (root, or
// an unlimited RLIMIT_MEMLOCK), so that nothing it holds (passphrase, keys,
// what the standard library copied of them) can reach swap. An ordinary user
// with the usual limit of a few MiB gets no mlockall — with MCL_FUTURE, every
// allocation past the limit would fail — and relies on the keys living in
// locked buffers and on the wiping SECURITY.md describes; that is not worth
// a warning on every command.
func protectMemory() {
	protectOnce.Do(func() { mount.Harden(false) })
}
