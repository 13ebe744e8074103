//go:build !amd64

// Command aesrate measures the clock and AES instruction rates of amd64 CPUs.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "aesrate: only amd64 is supported")
	os.Exit(1)
}
