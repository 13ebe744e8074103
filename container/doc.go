// Package container creates and opens vault files. It is the public entry point
// of the module: the CLI and the servers use it, and it composes the format
// packages (header: cryptvol's own format, docs/FORMAT.md), kdf (key derivation)
// and cipher (sector ciphers).
//
// # Formats
//
// Each container format is one package that reads and writes its header, bytes
// in and bytes out, adapted here behind one small internal interface: detect
// (by magic), unlock with a Secret (passphrase and keyfiles, combined the
// format's way) into a master key plus the data Geometry (offset, size, sector
// size, IV offset, cipher), and key management where the format allows it.
// Vault and Volume are the same whatever the format; callers never branch on
// it after Unlock or Open. Type names the format: TypeCryptvol, TypeLUKS1 and
// TypeLUKS2 (package luks; docs/LUKS.md), whose header may be a separate file
// (UnlockOptions.Header, OpenOptions.Header) and whose keyfiles are used as
// cryptsetup uses them (Secret.KeyfileOffset, KeyfileSize).
//
// Create makes a vault; Open unlocks one with a Secret and returns a Volume,
// which reads and writes the plaintext space with ReadAt/WriteAt at any offset and
// length, safe for concurrent use (WriteAtInPlace, for servers, encrypts in the
// caller's buffer instead of copying it). Inspect reads what the header tells without a
// passphrase. Unlock returns a Vault for key management.
//
// # Key management
//
// The 64-byte master key is random, created once, and never changes; passphrases
// only wrap it, in up to eight keyslots. Changing, adding or removing a passphrase
// rewrites the header, never the data. Every header change follows the update
// protocol of docs/FORMAT.md §9: the new header is written over one copy and
// fsynced before the other, so a crash at any point leaves a vault that opens with
// the old or the new passphrase; a passphrase change goes through a free slot so
// that both work in between.
//
// Secrets have one owner each, in locked memory (memguard): a Vault owns the master
// key, a Volume owns the expanded cipher keys; their Close is the one place each is
// wiped. Passphrase bytes passed in are not retained; the caller wipes them.
//
// # Compatibility
//
// LUKS1 and LUKS2 volumes made by cryptsetup open here and keep opening in
// cryptsetup after their keys are changed here; Create makes LUKS2 volumes
// with cryptsetup 2.6's defaults (CreateOptions.Type). What is refused and
// where the handling differs from cryptsetup's is in docs/LUKS.md; a damaged
// or older LUKS2 header copy is reported, and repaired only by Vault.Repair.
//
// Of cryptvol's own format this package reads and writes version 1 only. A
// header of another version is reported as unsupported (errors.Is(err,
// ErrDamaged) with a *header.VersionError inside), never misread. The golden vaults under
// testvectors/vaults are opened by the tests, so a change that breaks existing
// vaults fails CI.
package container
