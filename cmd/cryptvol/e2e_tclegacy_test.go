package main

import (
	"bytes"
	"os"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cryptvol/cryptvol/testvectors/gen/tclegacy"
)

// tclegacy FILE ALGORITHM PRF PASSFILE: write a TrueCrypt 4 volume (LRW or
// CBC header, testvectors/gen/tclegacy) whose header opens with the
// passphrase in PASSFILE under PRF.
func cmdTCLegacy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: tclegacy FILE ALGORITHM PRF PASSFILE")
	}
	pass, err := os.ReadFile(ts.MkAbs(args[3]))
	ts.Check(err)
	vol, err := tclegacy.Volume(args[1], args[2], bytes.TrimSuffix(pass, []byte("\n")))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), vol, 0o600))
}
