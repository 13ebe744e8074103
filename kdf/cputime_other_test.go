//go:build !unix

package kdf

import "time"

// cpuTime is unknown here: the benchmark reports zeros.
func cpuTime() (user, sys time.Duration) { return 0, 0 }
