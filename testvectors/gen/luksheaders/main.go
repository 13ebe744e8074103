// Command luksheaders writes the golden LUKS headers of testvectors/luks: the
// header areas of small volumes made by the host's cryptsetup, without their
// keyslot areas (random key material that would not compress), gzipped, and
// luks.json describing each (the cryptsetup command, what luksDump says).
// They pin the reading of real cryptsetup headers where cryptsetup is not
// installed, and seed the fuzz targets of package luks. Existing files are
// never overwritten.
//
//	go run ./testvectors/gen/luksheaders -out testvectors/luks
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Header describes one golden header in luks.json.
type Header struct {
	File        string   `json:"file"`
	Description string   `json:"description"`
	Cryptsetup  string   `json:"cryptsetup"` // `cryptsetup --version`
	Commands    []string `json:"commands"`
	DeviceSize  int64    `json:"device_size"` // of the volume the header came from
	Stored      int      `json:"stored"`      // bytes stored: the start of the volume
	Version     int      `json:"version"`
	UUID        string   `json:"uuid"`
	Cipher      string   `json:"cipher"`
	KeySize     int      `json:"key_size"`
	SectorSize  int      `json:"sector_size"`
	DataOffset  uint64   `json:"data_offset"`
	Keyslots    []int    `json:"keyslots"`
	Tokens      int      `json:"tokens"`
}

const pass = "golden passphrase"

func main() {
	out := flag.String("out", "testvectors/luks", "directory of the golden headers")
	flag.Parse()
	cheap := []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}
	argon := []string{"--pbkdf", "argon2id", "--pbkdf-memory", "32", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}
	specs := []struct {
		file, desc string
		version    int
		stored     int
		format     []string
		adds       [][]string
		token      string
		detached   bool
	}{
		{"luks1-sha256.hdr.gz", "LUKS1, aes-xts-plain64, 512-bit key, sha256, keyslots 0 and 1", 1, 4096,
			[]string{"--type", "luks1", "--cipher", "aes-xts-plain64", "--key-size", "512", "--hash", "sha256", "--pbkdf-force-iterations", "1000"},
			[][]string{{"--pbkdf-force-iterations", "1000"}}, "", false},
		{"luks1-cbc-essiv-sha1.hdr.gz", "LUKS1, aes-cbc-essiv:sha256, 256-bit key, sha1 (an old default)", 1, 4096,
			[]string{"--type", "luks1", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--hash", "sha1", "--pbkdf-force-iterations", "1000"},
			nil, "", false},
		{"luks2-argon2id-4096.hdr.gz", "LUKS2, cryptsetup's defaults but cheap argon2id, a pbkdf2 keyslot, a token, a label", 2, 32768,
			append([]string{"--type", "luks2", "--label", "golden"}, argon...),
			[][]string{cheap}, `{"type":"x-golden","keyslots":["1"],"note":"kept"}`, false},
		{"luks2-pbkdf2-512.hdr.gz", "LUKS2, pbkdf2 sha512, 512-byte sectors, aes-xts-plain64 256-bit", 2, 32768,
			[]string{"--type", "luks2", "--sector-size", "512", "--key-size", "256", "--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000"},
			nil, "", false},
		{"luks2-detached.hdr.gz", "LUKS2 detached header (data at offset 0 of another device)", 2, 32768,
			append([]string{"--type", "luks2"}, argon...), nil, "", true},
		{"luks2-metadata-64k.hdr.gz", "LUKS2 with 64 KiB metadata copies and argon2i", 2, 131072,
			[]string{"--type", "luks2", "--luks2-metadata-size", "64k", "--pbkdf", "argon2i", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2"},
			nil, "", false},
	}
	version, err := exec.Command("cryptsetup", "--version").Output()
	if err != nil {
		log.Fatal(err)
	}
	manifestPath := filepath.Join(*out, "luks.json")
	var manifest []Header
	if b, err := os.ReadFile(manifestPath); err == nil {
		if err := json.Unmarshal(b, &manifest); err != nil {
			log.Fatal(err)
		}
	}
	tmp, err := os.MkdirTemp("", "luksheaders")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, s := range specs {
		path := filepath.Join(*out, s.file)
		if _, err := os.Stat(path); err == nil {
			log.Printf("%s exists, kept", path)
			continue
		}
		h := Header{File: s.file, Description: s.desc, Cryptsetup: strings.TrimSpace(string(version)), DeviceSize: 20 << 20, Stored: s.stored, Version: s.version}
		dev := filepath.Join(tmp, s.file+".img")
		if err := os.WriteFile(dev, nil, 0o600); err != nil {
			log.Fatal(err)
		}
		os.Truncate(dev, h.DeviceSize)
		hdrFile := dev
		format := append([]string{"luksFormat", "--batch-mode", "--key-file=-"}, s.format...)
		if s.detached {
			hdrFile = dev + ".hdr"
			os.WriteFile(hdrFile, nil, 0o600)
			os.Truncate(hdrFile, 16<<20)
			h.DeviceSize = 16 << 20
			format = append(format, "--header", hdrFile)
		}
		run(&h, pass, append(format, dev)...)
		for i, a := range s.adds {
			f := filepath.Join(tmp, fmt.Sprint("secret", i))
			os.WriteFile(f, []byte(fmt.Sprintf("%s %d", pass, i+1)), 0o600)
			run(&h, pass, append(append([]string{"luksAddKey", "--batch-mode", "--key-file=-"}, a...), hdrFile, f)...)
		}
		if s.token != "" {
			run(&h, s.token, "token", "import", "--json-file=-", "--token-id", "0", hdrFile)
		}
		dump := run(&h, "", "luksDump", hdrFile)
		parseDump(&h, dump)
		b, err := os.ReadFile(hdrFile)
		if err != nil {
			log.Fatal(err)
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(b[:s.stored])
		zw.Close()
		if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
		manifest = append(manifest, h)
		log.Printf("wrote %s (%d bytes)", path, gz.Len())
	}
	b, _ := json.MarshalIndent(manifest, "", "  ")
	if err := os.WriteFile(manifestPath, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

// run runs cryptsetup with stdin, records the command (without paths) and
// returns its output.
func run(h *Header, stdin string, args ...string) string {
	cmd := exec.Command("cryptsetup", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("cryptsetup %v: %v\n%s", args, err, out)
	}
	var shown []string
	for _, a := range args {
		if strings.HasPrefix(a, "/") {
			a = filepath.Base(a)
		}
		shown = append(shown, a)
	}
	h.Commands = append(h.Commands, "cryptsetup "+strings.Join(shown, " "))
	return string(out)
}

// parseDump takes what the golden test compares from luksDump's output.
func parseDump(h *Header, dump string) {
	field := func(line, name string) (string, bool) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, name) {
			return "", false
		}
		return strings.TrimSpace(strings.TrimPrefix(line, name)), true
	}
	inKeyslots, inTokens := false, false
	for _, line := range strings.Split(dump, "\n") {
		if v, ok := field(line, "UUID:"); ok {
			h.UUID = v
		}
		if v, ok := field(line, "cipher:"); ok {
			h.Cipher = v
		}
		if v, ok := field(line, "Cipher name:"); ok {
			h.Cipher = v
		}
		if v, ok := field(line, "Cipher mode:"); ok && h.Version == 1 {
			h.Cipher += "-" + v
		}
		if v, ok := field(line, "MK bits:"); ok {
			fmt.Sscan(v, &h.KeySize)
			h.KeySize /= 8
		}
		if v, ok := field(line, "sector:"); ok {
			fmt.Sscan(v, &h.SectorSize)
		}
		if v, ok := field(line, "offset:"); ok && h.DataOffset == 0 && !inKeyslots {
			fmt.Sscan(v, &h.DataOffset)
		}
		if v, ok := field(line, "Payload offset:"); ok {
			fmt.Sscan(v, &h.DataOffset)
			h.DataOffset *= 512
			h.SectorSize = 512
		}
		switch {
		case strings.HasPrefix(line, "Keyslots:"):
			inKeyslots, inTokens = true, false
		case strings.HasPrefix(line, "Tokens:"):
			inKeyslots, inTokens = false, true
		case strings.HasPrefix(line, "Digests:"):
			inKeyslots, inTokens = false, false
		}
		var n int
		if inKeyslots && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d: luks2", &n); err == nil {
				h.Keyslots = append(h.Keyslots, n)
			}
		}
		if inTokens && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			h.Tokens++
		}
		if h.Version == 1 && strings.HasPrefix(line, "Key Slot ") && strings.HasSuffix(line, "ENABLED") {
			fmt.Sscanf(line, "Key Slot %d:", &n)
			h.Keyslots = append(h.Keyslots, n)
		}
	}
	if h.KeySize == 0 { // LUKS2 shows it per keyslot
		for _, line := range strings.Split(dump, "\n") {
			if v, ok := field(line, "Key:"); ok {
				fmt.Sscan(v, &h.KeySize)
				h.KeySize /= 8
				break
			}
		}
	}
}
