package lukshostile

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// Exact fragments of the base LUKS2 metadata (as luks.Create writes it).
const (
	fKeySize  = `"key_size":32,"af"`
	fAF       = `"af":{"type":"luks1","stripes":4000,"hash":"sha256"}`
	fArea     = `"area":{"type":"raw","offset":"32768","size":"131072","encryption":"aes-xts-plain64","key_size":32}`
	fKDF      = `"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":`
	fSeg      = `{"type":"crypt","offset":"5242880","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}`
	fDigest   = `"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,`
	fConfig   = `"config":{"json_size":"12288","keyslots_size":"5210112"}`
	fTokens   = `"tokens":{}`
	fSegments = `"segments":{"0":`
)

var be = binary.BigEndian

func b64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Cases returns every hostile volume, in a stable order.
func Cases() []Case {
	var cs []Case
	add := func(c Case) { cs = append(cs, c) }
	// j is a LUKS2 case that replaces fragments of the metadata in both copies.
	j := func(name string, read, unlock, data Outcome, msg string, pairs ...string) {
		add(Case{Name: name, Version: 2, Read: read, Unlock: unlock, Data: data, Message: msg,
			mutate: func(m *mutator) error { return m.replace(both, pairs...) }})
	}
	// damaged is metadata that fails validation: Read refuses it.
	damaged := func(name, msg string, pairs ...string) { j(name, Refused, OK, OK, msg, pairs...) }
	// slotRefused is a keyslot that cannot be tried: Unlock refuses.
	slotRefused := func(name, msg string, pairs ...string) { j(name, OK, Refused, OK, msg, pairs...) }
	// unsupported is data this package cannot open: Unlock and Geometry refuse.
	unsupported := func(name, msg string, pairs ...string) { j(name, OK, Refused, Refused, msg, pairs...) }
	wrong := func(name string, pairs ...string) { j(name, OK, WrongPassphrase, OK, "wrong passphrase", pairs...) }
	opens := func(name string, pairs ...string) { j(name, OK, OK, OK, "", pairs...) }
	custom := func(name string, read, unlock, data Outcome, degraded bool, msg string, f func(m *mutator) error) {
		add(Case{Name: name, Version: 2, Read: read, Unlock: unlock, Data: data, Degraded: degraded, Message: msg, mutate: f})
	}
	text := func(name, msg string, f func(t string) string) {
		custom(name, Refused, OK, OK, false, msg, func(m *mutator) error {
			t, err := m.json()
			if err != nil {
				return err
			}
			return m.setJSON(both, f(t))
		})
	}
	// value replaces the string value of the nth (from 0) member named key.
	value := func(name string, read, unlock, data Outcome, msg, key string, nth int, v string) {
		custom(name, read, unlock, data, false, msg, func(m *mutator) error {
			t, err := m.json()
			if err != nil {
				return err
			}
			i := -1
			for k := 0; k <= nth; k++ {
				n := strings.Index(t[i+1:], `"`+key+`":"`)
				if n < 0 {
					return fmt.Errorf("no %s number %d", key, nth)
				}
				i += 1 + n
			}
			i += len(`"` + key + `":"`)
			end := i + strings.IndexByte(t[i:], '"')
			return m.setJSON(both, t[:i]+v+t[end:])
		})
	}
	token := func(body string) []string { return []string{fTokens, `"tokens":{"0":` + body + `}`} }
	nest := func(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

	// --- LUKS2: JSON that is not the JSON LUKS2 defines. ---
	text("json-not-json", "invalid JSON", func(t string) string { return "{xyz" })
	text("json-trailing-garbage", `byte 0x78 .* after the JSON`, func(t string) string { return t + "x" })
	text("json-trailing-space", `byte 0x20 .* after the JSON`, func(t string) string { return t + " " })
	text("json-leading-space", `does not start with '\{'`, func(t string) string { return " " + t })
	text("json-array", `does not start with '\{'`, func(t string) string { return "[]" })
	text("json-truncated", "invalid JSON.*control character", func(t string) string { return t[:len(t)/2] })
	text("json-no-nul", "no NUL byte after the JSON", func(t string) string {
		pad := 12288 - len(t) - len(`,"x":""`)
		return t[:len(t)-1] + `,"x":"` + strings.Repeat("a", pad) + `"}`
	})
	damaged("json-duplicate-section", `duplicate key "keyslots"`, fTokens, `"keyslots":{},`+fTokens)
	damaged("json-duplicate-member", `duplicate key "type"`, `{"type":"luks2",`, `{"type":"luks2","type":"luks2",`)
	damaged("json-deep-nesting-33", "nested deeper than 32", token(`{"type":"x","keyslots":[],"n":`+nest(31)+`}`)...)
	damaged("json-deep-nesting-5000", "nested deeper than 32", token(`{"type":"x","keyslots":[],"n":`+nest(5000)+`}`)...)
	damaged("json-nul-escape", "NUL in string", token(`{"type":"x\u0000y","keyslots":[]}`)...)
	damaged("json-invalid-utf8", "invalid UTF-8", token("{\"type\":\"x\xff\",\"keyslots\":[]}")...)
	damaged("json-lone-surrogate", "lone surrogate", token(`{"type":"\ud800","keyslots":[]}`)...)
	damaged("json-control-char", "control character", token("{\"type\":\"x\x01\",\"keyslots\":[]}")...)
	damaged("json-bad-escape", `invalid escape`, token(`{"type":"\q","keyslots":[]}`)...)
	damaged("json-leading-zero", "expected ','", `"key_size":32,"af"`, `"key_size":032,"af"`)
	damaged("json-bare-word", "unexpected character", `"key_size":32,"af"`, `"key_size":thirtytwo,"af"`)
	damaged("json-single-quotes", "expected an object key", `{"type":"luks2",`, `{'type':"luks2",`)
	damaged("json-trailing-comma", "expected an object key", `"hash":"sha256"}`, `"hash":"sha256",}`)
	custom("json-too-many-values", Refused, OK, OK, false, "more than 65536 values", func(m *mutator) error {
		if err := m.bigMetadata(0x40000); err != nil {
			return err
		}
		return m.replace(both, fTokens, `"tokens":{"0":{"type":"x","keyslots":[],"v":[`+strings.TrimSuffix(strings.Repeat("0,", 70000), ",")+`]}}`)
	})

	// --- LUKS2: numbers. ---
	damaged("key-size-1e400", "not an integer", fKeySize, `"key_size":1e400,"af"`)
	damaged("key-size-2^64", "not an integer", fKeySize, `"key_size":18446744073709551616,"af"`)
	damaged("key-size-negative", "-1 is not within 0 to", fKeySize, `"key_size":-1,"af"`)
	damaged("key-size-2^32", "4294967296 is not within", fKeySize, `"key_size":4294967296,"af"`)
	damaged("key-size-float", "not an integer", fKeySize, `"key_size":32.0,"af"`)
	damaged("key-size-string", "not a number", fKeySize, `"key_size":"32","af"`)
	damaged("area-offset-negative", `"-1" is not a decimal number`, `"offset":"32768"`, `"offset":"-1"`)
	damaged("area-offset-empty", `"" is not a decimal number`, `"offset":"32768"`, `"offset":""`)
	damaged("area-offset-plus", `"\+32768" is not a decimal number`, `"offset":"32768"`, `"offset":"+32768"`)
	damaged("area-offset-space", `" 32768" is not a decimal number`, `"offset":"32768"`, `"offset":" 32768"`)
	damaged("area-offset-2^64", "does not fit 64 bits", `"offset":"32768"`, `"offset":"18446744073709551616"`)
	damaged("area-offset-number", "not a string", `"offset":"32768"`, `"offset":32768`)
	damaged("area-offset-2^64-1", "runs past the keyslots area", `"offset":"32768"`, `"offset":"18446744073709551615"`)
	damaged("area-offset-0", "inside the metadata", `"offset":"32768"`, `"offset":"0"`)
	damaged("area-offset-secondary", "inside the metadata", `"offset":"32768"`, `"offset":"16384"`)
	damaged("area-offset-past-keyslots", "runs past the keyslots area", `"offset":"32768"`, `"offset":"5242880"`)
	damaged("area-size-0", "size is 0", `"size":"131072"`, `"size":"0"`)
	damaged("area-size-2^64-1", "runs past the keyslots area", `"size":"131072"`, `"size":"18446744073709551615"`)
	damaged("area-size-past-end", "runs past the keyslots area", `"size":"131072"`, `"size":"5210113"`)
	damaged("json-size-mismatch", "differs from the binary header", `"json_size":"12288"`, `"json_size":"16384"`)
	damaged("json-size-letters", "not a decimal number", `"json_size":"12288"`, `"json_size":"12k"`)
	damaged("json-size-negative", "not a decimal number", `"json_size":"12288"`, `"json_size":"-12288"`)
	damaged("keyslots-size-unaligned", "not a multiple of 4096", `"keyslots_size":"5210112"`, `"keyslots_size":"5210111"`)
	damaged("keyslots-size-2^64-1", "not a multiple of 4096", `"keyslots_size":"5210112"`, `"keyslots_size":"18446744073709551615"`)
	damaged("keyslots-size-256MiB", "not a multiple of 4096 up to", `"keyslots_size":"5210112"`, `"keyslots_size":"268435456"`)
	damaged("keyslots-size-into-data", "inside the header and keyslots area", `"keyslots_size":"5210112"`, `"keyslots_size":"5242880"`)

	// --- LUKS2: sections, ids and references. ---
	damaged("config-missing", `missing "config"`, ","+fConfig, "")
	damaged("keyslots-array", "is a array, want a object", `"keyslots":{"0":`, `"keyslots":[],"x":{"0":`)
	damaged("keyslot-id-2^31", "key 2147483648 is not below 32", `{"keyslots":{"0":`, `{"keyslots":{"2147483648":`, `"keyslots":["0"]`, `"keyslots":["2147483648"]`)
	damaged("keyslot-id-32", "key 32 is not below 32", `{"keyslots":{"0":`, `{"keyslots":{"32":`, `"keyslots":["0"]`, `"keyslots":["32"]`)
	damaged("keyslot-id-00", `key "00" is not a canonical`, `{"keyslots":{"0":`, `{"keyslots":{"00":`, `"keyslots":["0"]`, `"keyslots":["00"]`)
	damaged("keyslot-id-negative", `key "-1" is not a canonical`, `{"keyslots":{"0":`, `{"keyslots":{"-1":`, `"keyslots":["0"]`, `"keyslots":["-1"]`)
	damaged("keyslot-id-letters", `key "x" is not a canonical`, `{"keyslots":{"0":`, `{"keyslots":{"x":`, `"keyslots":["0"]`, `"keyslots":["x"]`)
	damaged("keyslot-unbound", "bound to 0 digests", `"keyslots":["0"]`, `"keyslots":[]`)
	damaged("keyslot-two-digests", "bound to 2 digests", `}},"config"`,
		`},"1":{"type":"pbkdf2","keyslots":["0"],"segments":[],"hash":"sha256","iterations":1000,"salt":"`+b64(32)+`","digest":"`+b64(32)+`"}},"config"`)
	damaged("digest-missing-keyslot", `refers to "5", which does not exist`, `"keyslots":["0"]`, `"keyslots":["0","5"]`)
	damaged("digest-missing-segment", `refers to "1", which does not exist`, `"segments":["0"]`, `"segments":["0","1"]`)
	damaged("digest-keyslot-twice", `lists "0" twice`, `"keyslots":["0"]`, `"keyslots":["0","0"]`)
	damaged("digest-keyslot-number", "is a number, want a string", `"keyslots":["0"]`, `"keyslots":[0]`)
	damaged("digests-empty", "bound to 0 digests", fDigest, `"digests":{},"x":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,`)
	damaged("digest-no-type", `missing "type"`, `{"type":"pbkdf2","keyslots":["0"]`, `{"keyslots":["0"]`)
	damaged("segments-empty", "segments: is empty", fSegments+fSeg+"}", `"segments":{}`, `"segments":["0"]`, `"segments":[]`)
	damaged("segment-gap", "ids are not 0 to 0 without gaps", fSegments, `"segments":{"1":`, `"segments":["0"]`, `"segments":["1"]`)
	damaged("segment-no-digest", "segments.0: has no digest", `"segments":["0"]`, `"segments":[]`)
	damaged("segment-offset-unaligned", "not a multiple of 512", `"offset":"5242880"`, `"offset":"5242881"`)
	damaged("segment-offset-in-keyslots", "inside the header and keyslots area", `"offset":"5242880"`, `"offset":"1048576"`)
	damaged("segment-offset-overflow", "overflows", `"offset":"5242880","size":"dynamic"`, `"offset":"18446744073709551104","size":"4096"`)
	damaged("segment-size-0", "size: is 0", `"size":"dynamic"`, `"size":"0"`)
	damaged("segment-size-unaligned", "not a multiple of the sector size 4096", `"size":"dynamic"`, `"size":"1536"`)
	damaged("segment-size-letters", "not a decimal number", `"size":"dynamic"`, `"size":"big"`)
	damaged("segment-sector-0", "0 is not a multiple of 512", `"sector_size":4096`, `"sector_size":0`)
	damaged("segment-sector-1000", "1000 is not a multiple of 512", `"sector_size":4096`, `"sector_size":1000`)
	damaged("segment-sector-negative", "-4096 is not within", `"sector_size":4096`, `"sector_size":-4096`)
	damaged("segment-sector-float", "not an integer", `"sector_size":4096`, `"sector_size":4096.0`)
	damaged("segment-iv-tweak-letters", "not a decimal number", `"iv_tweak":"0"`, `"iv_tweak":"abc"`)
	damaged("segment-iv-tweak-2^64", "does not fit 64 bits", `"iv_tweak":"0"`, `"iv_tweak":"18446744073709551616"`)
	damaged("segment-integrity-string", "integrity: is a string", `"sector_size":4096`, `"sector_size":4096,"integrity":"hmac(sha256)"`)
	damaged("segment-integrity-fields", `missing "journal_encryption"`, `"sector_size":4096`, `"sector_size":4096,"integrity":{"type":"hmac(sha256)"}`)
	damaged("segments-overlap", "overlaps segment 0", fSegments+fSeg, fSegments+strings.Replace(fSeg, `"dynamic"`, `"32768"`, 1)+`,"1":`+strings.Replace(fSeg, `"5242880"`, `"5259264"`, 1), `"segments":["0"]`, `"segments":["0","1"]`)
	damaged("segment-dynamic-not-last", "only the last segment", fSegments+fSeg, fSegments+fSeg+`,"1":`+strings.Replace(strings.Replace(fSeg, `"5242880"`, `"5275648"`, 1), `"dynamic"`, `"4096"`, 1), `"segments":["0"]`, `"segments":["0","1"]`)
	damaged("token-missing-keyslot", `refers to "3", which does not exist`, token(`{"type":"x","keyslots":["3"]}`)...)
	damaged("token-no-type", `missing "type"`, token(`{"keyslots":[]}`)...)
	damaged("token-keyslots-string", "keyslots: is a string", token(`{"type":"x","keyslots":"0"}`)...)
	damaged("token-id-99", "key 99 is not below 32", fTokens, `"tokens":{"99":{"type":"x","keyslots":[]}}`)
	damaged("requirements-mandatory-string", "mandatory: is a string", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","requirements":{"mandatory":"x"}`)
	damaged("requirements-array", "requirements: is a array", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","requirements":[]`)
	damaged("config-flags-number", `flags\[0\]: is a number`, `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","flags":[1]`)
	damaged("kdf-pbkdf2-extra-member", "has 5 members", fKDF, `"kdf":{"type":"pbkdf2","time":1,"hash":"sha256","iterations":1000,"salt":`)
	damaged("kdf-argon2-no-cpus", "cpus: missing", fKDF, `"kdf":{"type":"argon2id","time":1,"memory":32,"x":1,"salt":`)
	damaged("kdf-argon2-memory-string", "memory: missing or not a number", fKDF, `"kdf":{"type":"argon2id","time":1,"memory":"32","cpus":1,"salt":`)
	value("kdf-salt-not-base64", Refused, OK, OK, "salt: is not base64", "salt", 0, "!!!")
	value("kdf-salt-unpadded", Refused, OK, OK, "salt: is not base64", "salt", 0, strings.TrimRight(b64(32), "="))
	value("digest-not-base64", Refused, OK, OK, "digest: is not base64", "digest", 0, "@@@@")
	damaged("af-type-luks2", `af.type: "luks2" is not "luks1"`, fAF, `"af":{"type":"luks2","stripes":4000,"hash":"sha256"}`)
	damaged("af-no-hash", `missing "hash"`, fAF, `"af":{"type":"luks1","stripes":4000}`)
	damaged("area-type-raw2", `area.type: "raw2" is not "raw"`, `"type":"raw"`, `"type":"raw2"`)
	damaged("area-no-encryption", `missing "encryption"`, `"encryption":"aes-xts-plain64","key_size":32}`, `"key_size":32}`)
	damaged("keyslot-priority-string", "priority: missing or not a number", fKeySize, `"key_size":32,"priority":"2","af"`)
	custom("area-overlap", Refused, OK, OK, false, "overlaps keyslot 0's area", func(m *mutator) error {
		return m.addKeyslots(both, []int{1}, 2*base2HdrSize+4096)
	})

	// --- LUKS2: keyslots that cannot be tried. ---
	slotRefused("kdf-scrypt", `type "scrypt"`, fKDF, `"kdf":{"type":"scrypt","hash":"sha256","iterations":1000,"salt":`)
	argon := func(t, mem, cpus string) []string {
		return []string{fKDF, `"kdf":{"type":"argon2id","time":` + t + `,"memory":` + mem + `,"cpus":` + cpus + `,"salt":`}
	}
	slotRefused("kdf-argon2-memory-2^31", "argon2id memory 2147483648 KiB is above the maximum", argon("1", "2147483648", "1")...)
	slotRefused("kdf-argon2-memory-0", "memory 0", argon("1", "0", "1")...)
	slotRefused("kdf-argon2-memory-4", "KiB is below 8 KiB per thread", argon("1", "4", "1")...)
	slotRefused("kdf-argon2-time-0", "time 0", argon("0", "32", "1")...)
	slotRefused("kdf-argon2-time-2^32-1", "iterations 4294967295 is above the maximum", argon("4294967295", "32", "1")...)
	slotRefused("kdf-argon2-time-2^40", "time 1099511627776", argon("1099511627776", "32", "1")...)
	slotRefused("kdf-argon2-cpus-0", "cpus 0", argon("1", "32", "0")...)
	slotRefused("kdf-argon2-cpus-1000", "threads 1000 is above the maximum", argon("1", "8000", "1000")...)
	slotRefused("kdf-argon2-cpus-negative", "cpus -1", argon("1", "32", "-1")...)
	slotRefused("kdf-argon2-work", `work .* is above the maximum`, argon("17", "4194304", "4")...)
	slotRefused("kdf-pbkdf2-iterations-0", "iterations 0", fKDF, `"kdf":{"type":"pbkdf2","hash":"sha256","iterations":0,"salt":`)
	slotRefused("kdf-pbkdf2-iterations-2^31", "pbkdf2 iterations 2147483648 is above the maximum", fKDF, `"kdf":{"type":"pbkdf2","hash":"sha256","iterations":2147483648,"salt":`)
	slotRefused("kdf-pbkdf2-hash-md5", `unsupported hash "md5"`, fKDF, `"kdf":{"type":"pbkdf2","hash":"md5","iterations":1000,"salt":`)
	value("kdf-salt-16-bytes", OK, Refused, OK, "salt of 16 bytes", "salt", 0, b64(16))
	slotRefused("af-stripes-4001", "4001 stripes", fAF, strings.Replace(fAF, "4000", "4001", 1))
	slotRefused("af-stripes-2^40", "1099511627776 stripes", fAF, strings.Replace(fAF, "4000", "1099511627776", 1))
	slotRefused("af-stripes-negative", "-4000 stripes", fAF, strings.Replace(fAF, "4000", "-4000", 1))
	slotRefused("af-hash-md5", `unsupported hash "md5"`, fAF, strings.Replace(fAF, "sha256", "md5", 1))
	slotRefused("area-cipher-null", `unsupported cipher "cipher_null-ecb"`, `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"cipher_null-ecb","key_size":32}`)
	slotRefused("area-cipher-cascade", `unsupported`, `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"serpent-aes-xts-plain64","key_size":64}`)
	slotRefused("area-key-size-0", "key size 0 bytes", `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"aes-xts-plain64","key_size":0}`)
	slotRefused("area-key-size-2^20", "key size 1048576 bytes", `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"aes-xts-plain64","key_size":1048576}`)
	slotRefused("area-offset-unaligned", "offset 33000 is not a multiple of 512", `"offset":"32768"`, `"offset":"33000"`)
	slotRefused("area-too-small", "cannot hold the 128000 bytes", `"size":"131072"`, `"size":"4096"`)
	unsupported("keyslot-type-unknown", "no keyslot holds its key", `{"type":"luks2","key_size"`, `{"type":"luks3","key_size"`)
	slotRefused("keyslot-priority-ignore", "priority ignore: tried only when asked for by number", fKeySize, `"key_size":32,"priority":0,"af"`)
	slotRefused("keyslot-priority-7", "priority unknown: tried only when asked for by number", fKeySize, `"key_size":32,"priority":7,"af"`)

	// --- LUKS2: data this package does not open. ---
	unsupported("key-size-4096", "unsupported cipher", fKeySize, `"key_size":4096,"af"`)
	unsupported("segment-type-linear", `type "linear"`, `{"type":"crypt","offset"`, `{"type":"linear","offset"`)
	unsupported("segment-integrity", "dm-integrity", `"sector_size":4096`, `"sector_size":4096,"integrity":{"type":"hmac(sha256)","journal_encryption":"none","journal_integrity":"none"}`)
	unsupported("segment-flags", `flags \["backup-previous"\]`, `"sector_size":4096`, `"sector_size":4096,"flags":["backup-previous"]`)
	unsupported("segment-sector-8192", "sector size 8192", `"sector_size":4096`, `"sector_size":8192`)
	unsupported("segment-sector-1536", "sector size 1536", `"sector_size":4096`, `"sector_size":1536`)
	unsupported("segment-cipher-null", `unsupported cipher "cipher_null-ecb"`, `"iv_tweak":"0","encryption":"aes-xts-plain64"`, `"iv_tweak":"0","encryption":"cipher_null-ecb"`)
	unsupported("segment-cipher-garbage", `unsupported cipher "aes"`, `"iv_tweak":"0","encryption":"aes-xts-plain64"`, `"iv_tweak":"0","encryption":"aes"`)
	unsupported("segment-cipher-long", "too long", `"iv_tweak":"0","encryption":"aes-xts-plain64"`, `"iv_tweak":"0","encryption":"`+strings.Repeat("aes-", 1000)+`xts-plain64"`)
	unsupported("segment-iv-tweak-7", "iv_tweak 7 is not a multiple", `"iv_tweak":"0"`, `"iv_tweak":"7"`)
	unsupported("segment-iv-tweak-2^64-1", "iv_tweak 18446744073709551615 is not a multiple", `"iv_tweak":"0"`, `"iv_tweak":"18446744073709551615"`)
	unsupported("segments-two", "2 segments", fSegments+fSeg, fSegments+strings.Replace(fSeg, `"dynamic"`, `"32768"`, 1)+`,"1":`+strings.Replace(fSeg, `"5242880"`, `"5275648"`, 1), `"segments":["0"]`, `"segments":["0","1"]`)
	unsupported("requirements-reencrypt", "a reencryption is in progress", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","requirements":{"mandatory":["online-reencrypt-v2"]}`)
	unsupported("requirements-unknown", "unknown mandatory requirements", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","requirements":{"mandatory":["x-future"]}`)
	unsupported("digest-type-unknown", `digest type "argon2"`, `{"type":"pbkdf2","keyslots":["0"]`, `{"type":"argon2","keyslots":["0"]`)
	unsupported("digest-iterations-0", "iterations 0", fDigest, strings.Replace(fDigest, `"iterations":1000`, `"iterations":0`, 1))
	unsupported("digest-iterations-2^40", "iterations 1099511627776", fDigest, strings.Replace(fDigest, `"iterations":1000`, `"iterations":1099511627776`, 1))
	unsupported("digest-hash-md5", `unsupported hash "md5"`, fDigest, strings.Replace(fDigest, `"sha256"`, `"md5"`, 1))
	custom("digest-19-bytes", OK, Refused, Refused, false, "digest of 19 bytes", func(m *mutator) error {
		t, err := m.json()
		if err != nil {
			return err
		}
		i := strings.Index(t, `"digest":"`) + len(`"digest":"`)
		end := i + strings.IndexByte(t[i:], '"')
		return m.setJSON(both, t[:i]+b64(19)+t[end:])
	})
	custom("no-keyslots", OK, Refused, Refused, false, "no keyslot holds its key", func(m *mutator) error {
		s0, err := m.slot0()
		if err != nil {
			return err
		}
		return m.replace(both, `{"keyslots":{"0":`+s0+`}`, `{"keyslots":{}`, `"keyslots":["0"]`, `"keyslots":[]`)
	})

	// --- LUKS2: well formed, the passphrase does not open it. ---
	value("kdf-salt-changed", OK, WrongPassphrase, OK, "wrong passphrase", "salt", 0, b64(32))
	value("digest-salt-changed", OK, WrongPassphrase, OK, "wrong passphrase", "salt", 1, b64(32))
	wrong("kdf-iterations-1001", fKDF, `"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1001,"salt":`)
	wrong("kdf-to-argon2id", argon("1", "8", "1")...)
	wrong("kdf-to-argon2i", fKDF, `"kdf":{"type":"argon2i","time":1,"memory":16,"cpus":2,"salt":`)
	wrong("af-hash-sha1", fAF, strings.Replace(fAF, "sha256", "sha1", 1))
	wrong("af-hash-whirlpool", fAF, strings.Replace(fAF, "sha256", "whirlpool", 1))
	wrong("area-moved", `"offset":"32768"`, `"offset":"163840"`)
	wrong("area-cipher-twofish", `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"twofish-xts-plain64","key_size":32}`)
	wrong("area-cipher-cbc-essiv", `"encryption":"aes-xts-plain64","key_size":32}`, `"encryption":"aes-cbc-essiv:sha256","key_size":32}`)
	opens("digest-extra-member", fDigest, fDigest+`"x-note":"`+b64(8)+`",`)
	custom("area-material-zeroed", OK, WrongPassphrase, OK, false, "wrong passphrase", func(m *mutator) error {
		return m.zero(2*base2HdrSize, base2AreaSize)
	})
	custom("digest-flipped", OK, WrongPassphrase, OK, false, "wrong passphrase", func(m *mutator) error {
		t, err := m.json()
		if err != nil {
			return err
		}
		i := strings.Index(t, `"digest":"`) + len(`"digest":"`)
		end := i + strings.IndexByte(t[i:], '"')
		return m.setJSON(both, t[:i]+b64(32)+t[end:])
	})
	custom("eight-keyslots-one-derivation", OK, WrongPassphrase, OK, false, "wrong passphrase", func(m *mutator) error {
		if err := m.addKeyslots(both, []int{1, 2, 3, 4, 5, 6, 7}, 0); err != nil {
			return err
		}
		return m.zero(2*base2HdrSize, base2AreaSize) // all eight share salt and parameters, none opens
	})

	// --- LUKS2: unusual but valid: it opens. ---
	opens("token-kept", token(`{"type":"x-vendor","keyslots":["0"],"deep":`+nest(30)+`,"s":"é\u00e9\ud83d\udd11"}`)...)
	opens("unknown-top-level-key", ","+fConfig, ","+fConfig+`,"x-future":[1,2.5e3,true,null,{"a":"b"}]`)
	opens("config-flags", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","flags":["allow-discards","no-read-workqueue"]`)
	opens("requirements-empty", `"keyslots_size":"5210112"`, `"keyslots_size":"5210112","requirements":{"mandatory":[],"optional":["x"]}`)
	opens("keyslot-priority-prefer", fKeySize, `"key_size":32,"priority":2,"af"`)
	opens("segment-iv-tweak-8", `"iv_tweak":"0"`, `"iv_tweak":"8"`)
	opens("segment-fixed-size", `"size":"dynamic"`, `"size":"32768"`)
	opens("digest-unused-extra", `}},"config"`, `},"1":{"type":"pbkdf2","keyslots":[],"segments":[],"hash":"sha256","iterations":1000,"salt":"`+b64(32)+`","digest":"`+b64(32)+`"}},"config"`)
	opens("whitespace-inside", `{"keyslots":{"0":`, "{ \"keyslots\" :\n{\t\"0\" : ")
	opens("escaped-strings", `"type":"luks2"`, `"type":"\u006cuks2"`, `"hash":"sha256"}`, `"hash":"sha\u0032\u0035\u0036"}`)
	j("segment-fixed-past-end", OK, OK, Refused, "run past the end", `"size":"dynamic"`, `"size":"1048576"`)
	j("segment-offset-past-end", OK, OK, Refused, "is not inside the", `"offset":"5242880"`, `"offset":"1099511627776"`)
	j("segment-offset-0", OK, OK, Refused, "inside the header area", `"offset":"5242880"`, `"offset":"0"`)
	custom("big-metadata-256k", OK, OK, OK, false, "", func(m *mutator) error { return m.bigMetadata(0x40000) })
	custom("thirty-two-keyslots", OK, OK, OK, false, "", func(m *mutator) error {
		ids := make([]int, 31)
		for i := range ids {
			ids[i] = i + 1
		}
		return m.addKeyslots(both, ids, 0)
	})
	opens("keyslot-id-31", `{"keyslots":{"0":`, `{"keyslots":{"31":`, `"keyslots":["0"]`, `"keyslots":["31"]`)

	// --- LUKS2: the two copies. ---
	copyCase := func(name string, read, unlock Outcome, degraded bool, msg string, f func(m *mutator) error) {
		custom(name, read, unlock, OK, degraded, msg, f)
	}
	for _, w := range []which{primary, secondary} {
		copyCase("checksum-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			return m.bin(w, false, func(b []byte) { b[100] ^= 0x5a })
		})
		copyCase("json-flip-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			off := m.offsets(w)[0]
			b := make([]byte, 1)
			m.f.ReadAt(b, off+4096+10)
			b[0] ^= 1
			_, err := m.f.WriteAt(b, off+4096+10)
			return err
		})
		copyCase("hdr-offset-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			return m.bin(w, true, func(b []byte) { be.PutUint64(b[offHdrOffset:], 4096) })
		})
		copyCase("version-3-"+w.String(), map[which]Outcome{primary: Refused, secondary: OK}[w], OK, w == secondary, map[which]string{primary: "LUKS version 3"}[w], func(m *mutator) error {
			return m.bin(w, true, func(b []byte) { be.PutUint16(b[6:], 3) })
		})
		copyCase("csum-alg-md5-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			return m.bin(w, false, func(b []byte) { copy(b[offCsumAlg:offCsumAlg+32], "md5\x00\x00\x00") })
		})
		copyCase("csum-alg-unterminated-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			return m.bin(w, true, func(b []byte) { copy(b[offCsumAlg:offCsumAlg+32], strings.Repeat("sha256", 6)) })
		})
		copyCase("json-invalid-"+w.String(), OK, OK, true, "", func(m *mutator) error { return m.setJSON(w, "{}") })
		copyCase("magic-"+w.String(), OK, OK, true, "", func(m *mutator) error {
			return m.bin(w, false, func(b []byte) { clear(b[:6]) })
		})
	}
	copyCase("checksum-both", Refused, OK, false, "both copies are unusable.*checksum", func(m *mutator) error {
		return m.bin(both, false, func(b []byte) { b[100] ^= 0x5a })
	})
	copyCase("magic-both", NotLUKS, OK, false, "not a LUKS volume", func(m *mutator) error {
		return m.bin(both, false, func(b []byte) { clear(b[:6]) })
	})
	copyCase("hdr-size-primary-0", OK, OK, true, "", func(m *mutator) error {
		return m.bin(primary, true, func(b []byte) { be.PutUint64(b[offHdrSize:], 0) })
	})
	copyCase("hdr-size-primary-2^64-1", OK, OK, true, "", func(m *mutator) error {
		return m.bin(primary, true, func(b []byte) { be.PutUint64(b[offHdrSize:], 1<<64-1) })
	})
	copyCase("hdr-size-primary-32k", Refused, OK, false, "both copies are unusable", func(m *mutator) error {
		return m.bin(primary, true, func(b []byte) { be.PutUint64(b[offHdrSize:], 0x8000) })
	})
	copyCase("hdr-size-secondary-32k", OK, OK, true, "", func(m *mutator) error {
		return m.bin(secondary, true, func(b []byte) { be.PutUint64(b[offHdrSize:], 0x8000) })
	})
	copyCase("seqid-secondary-newer", OK, OK, true, "", func(m *mutator) error {
		return m.bin(secondary, true, func(b []byte) { be.PutUint64(b[offSeqid:], be.Uint64(b[offSeqid:])+1) })
	})
	copyCase("seqid-primary-max", OK, OK, true, "", func(m *mutator) error {
		return m.bin(primary, true, func(b []byte) { be.PutUint64(b[offSeqid:], 1<<64-1) })
	})
	copyCase("seqid-secondary-newer-invalid", OK, OK, true, "", func(m *mutator) error {
		if err := m.setJSON(secondary, `{"keyslots":{}}`); err != nil {
			return err
		}
		return m.bin(secondary, true, func(b []byte) { be.PutUint64(b[offSeqid:], 1<<40) })
	})
	copyCase("same-seqid-different-json", OK, OK, true, "", func(m *mutator) error {
		return m.replace(secondary, fKDF, `"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1001,"salt":`)
	})
	copyCase("same-seqid-different-uuid", OK, OK, true, "", func(m *mutator) error {
		return m.bin(secondary, true, func(b []byte) { b[offUUID] ^= 1 })
	})
	copyCase("csum-sha1", OK, OK, false, "", func(m *mutator) error {
		return m.bin(both, true, func(b []byte) { copy(b[offCsumAlg:offCsumAlg+32], "sha1\x00\x00") })
	})
	copyCase("csum-sha512", OK, OK, false, "", func(m *mutator) error {
		return m.bin(both, true, func(b []byte) { copy(b[offCsumAlg:offCsumAlg+32], "sha512") })
	})
	copyCase("label-unterminated", OK, OK, false, "", func(m *mutator) error {
		return m.bin(both, true, func(b []byte) { copy(b[offLabel:offLabel+48], strings.Repeat("\x1b[2J", 12)) })
	})
	copyCase("uuid-control-chars", OK, OK, false, "", func(m *mutator) error {
		return m.bin(both, true, func(b []byte) { copy(b[offUUID:offUUID+40], "\x07\x1b]0;evil\x07\r\n") })
	})

	// --- LUKS2: truncated and overwritten volumes. ---
	trunc := func(name string, size int64, read, unlock, data Outcome, msg string) {
		custom(name, read, unlock, data, false, msg, func(m *mutator) error { return m.truncate(size) })
	}
	trunc("truncated-0", 0, NotLUKS, OK, OK, "not a LUKS volume")
	trunc("truncated-8", 8, NotLUKS, OK, OK, "not a LUKS volume")
	trunc("truncated-4096", 4096, Refused, OK, OK, "both copies are unusable")
	trunc("truncated-16k", 16384, Refused, OK, OK, "both copies are unusable|device is 16384 bytes")
	trunc("truncated-32k", 32768, Refused, OK, OK, "device is 32768 bytes, the header and keyslot areas need")
	trunc("truncated-in-keyslots", 100000, Refused, OK, OK, "device is 100000 bytes")
	trunc("truncated-at-data", base2DataOffset, OK, OK, Refused, "is not inside the")
	custom("random-start", NotLUKS, OK, OK, false, "not a LUKS volume", func(m *mutator) error {
		b := make([]byte, 2*base2HdrSize)
		rand.Read(b)
		_, err := m.f.WriteAt(b, 0)
		return err
	})

	cs = append(cs, luks1Cases()...)
	return cs
}

// luks1Cases are the hostile LUKS1 volumes.
func luks1Cases() []Case {
	var cs []Case
	e := func(name string, read, unlock, data Outcome, msg string, f func(h []byte)) {
		cs = append(cs, Case{Name: "luks1-" + name, Version: 1, Read: read, Unlock: unlock, Data: data, Message: msg,
			mutate: func(m *mutator) error { return m.edit1(f) }})
	}
	u32 := func(off int, v uint32) func([]byte) { return func(h []byte) { be.PutUint32(h[off:], v) } }
	slot := func(i, field int, v uint32) func([]byte) { return u32(208+48*i+field, v) }
	str := func(off, n int, s string) func([]byte) {
		return func(h []byte) { clear(h[off : off+n]); copy(h[off:off+n], s) }
	}
	const (
		offState, offIter, offSalt, offOffset, offStripes = 0, 4, 8, 40, 44
	)
	e("magic", NotLUKS, OK, OK, "not a LUKS volume", func(h []byte) { h[0] = 'X' })
	e("version-3", Refused, OK, OK, "LUKS version 3", func(h []byte) { be.PutUint16(h[6:], 3) })
	e("version-0", Refused, OK, OK, "LUKS version 0", func(h []byte) { be.PutUint16(h[6:], 0) })
	e("key-bytes-0", Refused, OK, OK, "key_bytes: 0 is not within", u32(108, 0))
	e("key-bytes-max", Refused, OK, OK, "key_bytes: 4294967295 is not within", u32(108, 1<<32-1))
	e("key-bytes-65", Refused, OK, OK, "key_bytes: 65 is not within", u32(108, 65))
	e("key-bytes-15", Refused, OK, OK, "key_bytes: 15 is not within", u32(108, 15))
	e("key-bytes-64", Refused, OK, OK, "overlaps", u32(108, 64))
	e("key-bytes-16", OK, Refused, Refused, "unsupported cipher", u32(108, 16))
	e("mk-iterations-0", Refused, OK, OK, "mk_digest_iterations: is 0", u32(164, 0))
	e("mk-iterations-max", OK, Refused, OK, "pbkdf2 iterations 4294967295 is above the maximum", u32(164, 1<<32-1))
	e("slot-iterations-0", OK, Refused, OK, "pbkdf2 iterations 0 is below the minimum", slot(0, offIter, 0))
	e("slot-iterations-max", OK, Refused, OK, "pbkdf2 iterations 4294967295 is above the maximum", slot(0, offIter, 1<<32-1))
	e("stripes-3999", Refused, OK, OK, "3999 stripes", slot(0, offStripes, 3999))
	e("stripes-0", Refused, OK, OK, "0 stripes", slot(3, offStripes, 0))
	e("stripes-max", Refused, OK, OK, "4294967295 stripes", slot(7, offStripes, 1<<32-1))
	e("slot-state-garbage", Refused, OK, OK, "state 0x12345678", slot(2, offState, 0x12345678))
	e("slot-disabled", OK, WrongPassphrase, OK, "no usable keyslot", slot(0, offState, 0xDEAD))
	e("slot-offset-0", Refused, OK, OK, "overlaps the header", slot(0, offOffset, 0))
	e("slot-offset-1", Refused, OK, OK, "overlaps the header", slot(1, offOffset, 1))
	e("slot-offset-max", Refused, OK, OK, "runs into the data", slot(0, offOffset, 1<<32-1))
	e("slot-offset-overlap", Refused, OK, OK, "overlaps keyslot", slot(1, offOffset, 8))
	e("slot7-into-data", Refused, OK, OK, "runs into the data", slot(7, offOffset, 4000))
	e("payload-1", Refused, OK, OK, "runs into the data", u32(104, 1))
	e("payload-max", OK, OK, Refused, "is not inside the", u32(104, 1<<32-1))
	e("payload-0", OK, OK, Refused, "inside the header area", u32(104, 0))
	e("cipher-null", OK, Refused, Refused, `unsupported cipher "cipher_null-ecb"`, func(h []byte) { str(8, 32, "cipher_null")(h); str(40, 32, "ecb")(h) })
	e("cipher-twofish", OK, WrongPassphrase, OK, "wrong passphrase", str(8, 32, "twofish"))
	e("cipher-serpent-cbc-essiv", OK, WrongPassphrase, OK, "wrong passphrase", func(h []byte) { str(8, 32, "serpent")(h); str(40, 32, "cbc-essiv:sha256")(h) })
	e("mode-garbage", OK, Refused, Refused, "unsupported cipher", str(40, 32, "xts-plain64\xff\xfe"))
	e("name-unterminated", OK, Refused, Refused, "unsupported cipher", func(h []byte) { copy(h[8:40], strings.Repeat("A", 32)) })
	e("cipher-empty", Refused, OK, OK, "name or mode is empty", str(8, 32, ""))
	e("hash-md5", OK, Refused, Refused, `unsupported hash "md5"`, str(72, 32, "md5"))
	e("hash-sha1", OK, WrongPassphrase, OK, "wrong passphrase", str(72, 32, "sha1"))
	e("hash-whirlpool", OK, WrongPassphrase, OK, "wrong passphrase", str(72, 32, "whirlpool"))
	e("hash-uppercase", OK, OK, OK, "", str(72, 32, "SHA256"))
	e("uuid-control-chars", OK, OK, OK, "", str(168, 40, "\x1b[31m\x07evil\r\n"))
	e("mk-digest-flipped", OK, WrongPassphrase, OK, "wrong passphrase", func(h []byte) { h[112] ^= 1 })
	e("salt-flipped", OK, WrongPassphrase, OK, "wrong passphrase", func(h []byte) { h[208+offSalt] ^= 1 })
	e("all-slots-one-derivation", OK, WrongPassphrase, OK, "wrong passphrase", func(h []byte) {
		// Every keyslot active with the same salt and iterations, none of
		// them the ones keyslot 0 was made with: eight tries, one derivation.
		h[208+offSalt] ^= 1
		for i := 1; i < 8; i++ {
			copy(h[208+48*i:208+48*i+40], h[208:248])
		}
	})
	e("all-slots-active", OK, OK, OK, "", func(h []byte) {
		for i := 1; i < 8; i++ {
			copy(h[208+48*i:208+48*i+40], h[208:248])
		}
	})
	l1 := func(name string, read, unlock, data Outcome, msg string, f func(m *mutator) error) {
		cs = append(cs, Case{Name: "luks1-" + name, Version: 1, Read: read, Unlock: unlock, Data: data, Message: msg, mutate: f})
	}
	l1("material-zeroed", OK, WrongPassphrase, OK, "wrong passphrase", func(m *mutator) error { return m.zero(8*512, 250*512) })
	l1("truncated-0", NotLUKS, OK, OK, "not a LUKS volume", func(m *mutator) error { return m.truncate(0) })
	l1("truncated-100", Refused, OK, OK, "shorter than a header", func(m *mutator) error { return m.truncate(100) })
	l1("truncated-592", Refused, OK, OK, "the header and keyslots need", func(m *mutator) error { return m.truncate(592) })
	l1("truncated-in-slot0", Refused, OK, OK, "the header and keyslots need", func(m *mutator) error { return m.truncate(8*512 + 1000) })
	l1("truncated-at-data", OK, OK, Refused, "is not inside the", func(m *mutator) error { return m.truncate(base1Payload * 512) })
	return cs
}
