//go:build !race

package cipher_test

const raceEnabled = false
