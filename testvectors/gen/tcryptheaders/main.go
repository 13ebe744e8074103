// Command tcryptheaders writes testvectors/tcrypt/headers.json: decrypted
// VeraCrypt and TrueCrypt headers (the 448 bytes after the salt) with the
// field values of the volumes in ../shared/interop/tcrypt-images.tar.xz, as
// VeraCrypt and TrueCrypt wrote them, each with the place it was found, the
// size of its file and the data area it describes; and variants that must be
// refused, with the field that refuses them. The key area is a fixed pattern
// (the images' keys are not copied).
//
// The field values were read from the images' headers once decrypted, and
// the data areas confirmed by the filesystem UUID each decrypts to (the
// README's oracle). package tcrypt's TestHeaderVectors checks Parse and Area
// against this file and FuzzParseArea starts from it.
//
//	go run ./testvectors/gen/tcryptheaders > testvectors/tcrypt/headers.json
package main

import (
	"encoding/hex"
	"encoding/json"
	"log"
	"os"

	"github.com/cryptvol/cryptvol/tcrypt"
)

// Vector is one decrypted header.
type Vector struct {
	Name     string `json:"name"`
	Plain    string `json:"plaintext"` // hex, 448 bytes
	Kind     string `json:"kind"`      // "normal", "hidden" or "system"
	Legacy   bool   `json:"legacy,omitempty"`
	FileSize int64  `json:"file_size"`
	// Want is the data area (offset, size, first unit), or Field the
	// field Parse or Area refuses.
	Want  *[3]int64 `json:"want,omitempty"`
	Field string    `json:"field,omitempty"`
}

func main() {
	keys := make([]byte, tcrypt.KeyAreaSize)
	for i := range keys {
		keys[i] = byte(i*7 + 3)
	}
	vc := func(vol, hidden, start, length uint64) *tcrypt.Header {
		return &tcrypt.Header{Magic: tcrypt.MagicVeraCrypt, Version: 5, MinProgramVersion: 0x010b,
			VolumeSize: vol, HiddenVolumeSize: hidden, EncryptedAreaStart: start, EncryptedAreaLength: length, SectorSize: 512}
	}
	tc := func(version, minProg uint16, vol, hidden, start, length uint64) *tcrypt.Header {
		return &tcrypt.Header{Magic: tcrypt.MagicTrueCrypt, Version: version, MinProgramVersion: minProg,
			VolumeSize: vol, HiddenVolumeSize: hidden, EncryptedAreaStart: start, EncryptedAreaLength: length, SectorSize: 512}
	}
	with := func(h *tcrypt.Header, f func(h *tcrypt.Header)) *tcrypt.Header { c := *h; f(&c); return &c }
	area := func(off, size int64) *[3]int64 { return &[3]int64{off, size, off / 512} }

	vcNormal := vc(36864, 0, 131072, 36864)
	vcOuter := vc(86016, 0, 131072, 86016)
	vcHidden := vc(47104, 47104, 165888, 47104)
	sys := with(vc(16777216, 0, 1048576, 64422412288), func(h *tcrypt.Header) { h.Flags = tcrypt.FlagSystem })
	tc3 := tc(3, 0x0500, 18944, 0, 0, 18944)
	tc4Outer := tc(4, 0x0600, 50176, 0, 131072, 50176)
	tc4Hidden := tc(4, 0x0600, 19456, 19456, 157696, 19456)
	tc5 := tc(5, 0x0700, 36864, 0, 131072, 36864)
	vs := []struct {
		v Vector
		h *tcrypt.Header
	}{
		{Vector{Name: "vc_1-sha512-xts-aes", Kind: "normal", FileSize: 299008, Want: area(131072, 36864)}, vcNormal},
		{Vector{Name: "vc_1-sha512-xts-aes-hidden, outer", Kind: "normal", FileSize: 348160, Want: area(131072, 86016)}, vcOuter},
		{Vector{Name: "vc_1-sha512-xts-aes-hidden, hidden", Kind: "hidden", FileSize: 348160, Want: area(165888, 47104)}, vcHidden},
		{Vector{Name: "sys_vc_1_mbr_part-sha256-xts-aes", Kind: "system", FileSize: 18874368, Want: area(1048576, 16777216)}, sys},
		{Vector{Name: "tc_3-ripemd160-xts-serpent", Kind: "normal", FileSize: 19456, Want: area(512, 18944)}, tc3},
		{Vector{Name: "tc_4-sha512-xts-aes-hidden, outer", Kind: "normal", FileSize: 312320, Want: area(131072, 50176)}, tc4Outer},
		{Vector{Name: "tc_4-sha512-xts-aes-hidden, hidden", Kind: "hidden", FileSize: 312320, Want: area(157696, 19456)}, tc4Hidden},
		{Vector{Name: "tc_5-sha512-xts-aes", Kind: "normal", FileSize: 299008, Want: area(131072, 36864)}, tc5},
		{Vector{Name: "TrueCrypt 5 hidden volume", Kind: "hidden", Legacy: true, FileSize: 19456, Want: area(19456-1536-8192, 8192)}, tc(3, 0x0500, 8192, 8192, 0, 0)},

		{Vector{Name: "truncated file", Kind: "normal", FileSize: 298496, Field: "volume size"}, vcNormal},
		{Vector{Name: "volume size 2^63", Kind: "normal", FileSize: 299008, Field: "volume size"}, with(vcNormal, func(h *tcrypt.Header) { h.VolumeSize = 1 << 63 })},
		{Vector{Name: "volume size not whole units", Kind: "normal", FileSize: 299008, Field: "volume size"}, with(vcNormal, func(h *tcrypt.Header) { h.VolumeSize = 36865 })},
		{Vector{Name: "encrypted area over the headers", Kind: "normal", FileSize: 299008, Field: "encrypted area start"}, with(vcNormal, func(h *tcrypt.Header) { h.EncryptedAreaStart = 512 })},
		{Vector{Name: "encrypted area start 2^64-512", Kind: "normal", FileSize: 299008, Field: "encrypted area start"}, with(vcNormal, func(h *tcrypt.Header) { h.EncryptedAreaStart = 1<<64 - 512 })},
		{Vector{Name: "hidden volume into the backup headers", Kind: "hidden", FileSize: 348160, Field: "volume size"}, with(vcHidden, func(h *tcrypt.Header) {
			h.HiddenVolumeSize, h.VolumeSize, h.EncryptedAreaLength = 47104+131072, 47104+131072, 47104+131072
		})},
		{Vector{Name: "hidden volume size 0", Kind: "hidden", FileSize: 348160, Field: "hidden volume size"}, with(vcHidden, func(h *tcrypt.Header) { h.HiddenVolumeSize = 0 })},
		{Vector{Name: "hidden volume size in a normal header", Kind: "normal", FileSize: 348160, Field: "hidden volume size"}, vcHidden},
		{Vector{Name: "system flag in a volume header", Kind: "normal", FileSize: 299008, Field: "flags"}, with(vcNormal, func(h *tcrypt.Header) { h.Flags = tcrypt.FlagSystem })},
		{Vector{Name: "encrypted in place", Kind: "normal", FileSize: 299008, Field: "flags"}, with(vcNormal, func(h *tcrypt.Header) { h.Flags = tcrypt.FlagInPlace })},
		{Vector{Name: "system encryption unfinished", Kind: "system", FileSize: 18874368, Field: "encrypted area length"}, with(sys, func(h *tcrypt.Header) { h.EncryptedAreaLength = 8 << 20 })},
		{Vector{Name: "system partition past the image", Kind: "system", FileSize: 8 << 20, Field: "volume size"}, sys},
		{Vector{Name: "header version 6", Kind: "normal", FileSize: 299008, Field: "version"}, with(vcNormal, func(h *tcrypt.Header) { h.Version = 6 })},
		{Vector{Name: "header version 2", Kind: "normal", FileSize: 299008, Field: "version"}, with(tc5, func(h *tcrypt.Header) { h.Version = 2 })},
		{Vector{Name: "sector size 8192", Kind: "normal", FileSize: 299008, Field: "sector size"}, with(vcNormal, func(h *tcrypt.Header) { h.SectorSize = 8192 })},
	}
	var out []Vector
	for _, x := range vs {
		x.v.Plain = hex.EncodeToString(x.h.Encode(keys))
		out = append(out, x.v)
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(append(b, '\n'))
}
