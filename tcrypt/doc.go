// Package tcrypt reads and writes the headers of VeraCrypt and TrueCrypt
// volumes (docs/VERACRYPT.md): bytes in, bytes out. It knows where headers
// lie in a volume, how their keys are derived from a password (PBKDF2 over
// the PRFs both programs use, Argon2id, a PIM, keyfiles), how they are
// encrypted and what their fields mean; container composes it into a Vault
// and a Volume.
//
// The formats have no magic in the clear: a header is 64 bytes of salt
// followed by 448 encrypted bytes, and the only way to find one is trial
// decryption, deriving a key with every PRF at every place a header may be
// and decrypting with every encryption algorithm until the magic and two
// CRC-32 checksums come out right. Any 512 bytes are a candidate header.
// Plan states the whole work of one unlock before it starts; it depends on
// the options alone, since a header records no KDF parameters.
//
// Nothing here authenticates a header or the data: the checksums are CRC-32
// and catch wrong keys, not tampering, and XTS does not detect changes to
// the data. Whoever can write the volume file can corrupt it undetected.
package tcrypt
