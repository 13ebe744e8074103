package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseSize parses a byte count with an optional binary suffix: K, M, G, T, P
// (powers of 1024), optionally followed by "iB" or "B", in either case: "10G",
// "512MiB", "4096". Fractions, signs and values that overflow are refused.
func parseSize(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	upper := strings.ToUpper(s)
	for _, suf := range []string{"IB", "B"} {
		if strings.HasSuffix(upper, suf) && len(upper) > len(suf) {
			upper = upper[:len(upper)-len(suf)]
			break
		}
	}
	shift := 0
	if n := len(upper); n > 0 {
		if i := strings.IndexByte("KMGTP", upper[n-1]); i >= 0 {
			shift = 10 * (i + 1)
			upper = upper[:n-1]
		}
	}
	if upper == "" || strings.IndexFunc(upper, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("invalid size %q: want a whole number with an optional K, M, G, T or P suffix (powers of 1024)", orig)
	}
	v, err := strconv.ParseUint(upper, 10, 63)
	if err != nil || v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("invalid size %q: too large", orig)
	}
	return int64(v << shift), nil
}
