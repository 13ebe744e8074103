//go:build race

package cipher_test

// raceEnabled reports a build with the race detector, under which pure-Go
// hashing runs an order of magnitude slower.
const raceEnabled = true
