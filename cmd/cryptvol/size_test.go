package main

import (
	"math"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "1K": 1024, "1k": 1024, "10G": 10 << 30, "10GiB": 10 << 30, "10gb": 10 << 30,
		"512M": 512 << 20, "1T": 1 << 40, "2P": 2 << 50, " 8M ": 8 << 20, "100B": 100,
		"9223372036854775807": math.MaxInt64, "8191P": 8191 << 50,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "1.5G", "10Q", "1E", "8192P", "9223372036854775808", "99999999999999999999", "1 G", "0x10", "+5", "B", "iB", "1GG"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// sizeSeeds start FuzzParseSize: sizes as the CLI's flags take them.
var sizeSeeds = []string{"10G", "512MiB", "4096", "1.5G", "8191P", "-1", "9223372036854775807", "16M", "1T"}

func TestSizeSeeds(t *testing.T) {
	if len(sizeSeeds) == 0 {
		t.Fatal("no seeds for FuzzParseSize")
	}
	valid := 0
	for _, s := range sizeSeeds {
		if _, err := parseSize(s); err == nil {
			valid++
		}
	}
	if valid < len(sizeSeeds)/2 {
		t.Fatalf("only %d of %d seeds parse: the fuzzer would start from errors", valid, len(sizeSeeds))
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range sizeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d: negative", s, n)
		}
		// A plain number parses to itself.
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && v != n {
			t.Fatalf("parseSize(%q) = %d, want %d", s, n, v)
		}
	})
}
