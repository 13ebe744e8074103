// Package luks reads and writes LUKS1 and LUKS2 headers, the on-disk format of
// cryptsetup and dm-crypt, as a format beside cryptvol's own (package header):
// bytes in, bytes out, with the key derivations of package kdf and the sector
// ciphers of package cipher. It imports nothing else from the module, never
// prints, prompts or exits, and never panics on data from a device.
//
// Detect and Read find and validate a header on a volume or a detached
// header file; Header.Unlock turns a passphrase (or the bytes of a keyfile,
// which cryptsetup treats the same way) into the volume key; Header.Geometry
// says where and how the data is encrypted. docs/LUKS.md lists what is
// supported, what is refused and where this package differs from cryptsetup.
package luks
