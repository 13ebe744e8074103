//go:build race

package main

// raceEnabled reports a build with the race detector, under which pure-Go
// hashing (Whirlpool, Streebog, RIPEMD-160) runs an order of magnitude
// slower: the e2e scripts leave out their longest key derivations ([slowkdf]).
const raceEnabled = true
