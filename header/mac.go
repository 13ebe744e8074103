package header

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// MACKeySize is the size of the header MAC key.
const MACKeySize = 32

// MACKey derives the header MAC key of docs/FORMAT.md §7 from the master key into
// dst (MACKeySize bytes, typically locked memory).
func MACKey(dst, masterKey []byte, uuid [16]byte) error {
	if len(dst) != MACKeySize {
		return fmt.Errorf("mac key buffer is %d bytes, want %d", len(dst), MACKeySize)
	}
	k, err := hkdf.Key(sha256.New, masterKey, uuid[:], "cryptvol v1 header mac", MACKeySize)
	if err != nil {
		return err
	}
	copy(dst, k)
	clear(k)
	return nil
}

// Seal computes the header MAC with macKey over every other field and stores it
// in h. Call it after every change, before Encode.
func (h *Header) Seal(macKey []byte) {
	copy(h.MAC[:], h.mac(macKey))
}

// VerifyMAC reports, in constant time, whether h carries the MAC of its fields
// under macKey.
func (h *Header) VerifyMAC(macKey []byte) bool {
	return hmac.Equal(h.MAC[:], h.mac(macKey))
}

func (h *Header) mac(macKey []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(h.encodeBody()[:macOffset])
	return m.Sum(nil)
}
