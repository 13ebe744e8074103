//go:build !race

package tcrypt

const raceEnabled = false
