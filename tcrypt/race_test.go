//go:build race

package tcrypt

// raceEnabled reports a build with the race detector, under which pure-Go
// hashing runs an order of magnitude slower.
const raceEnabled = true
