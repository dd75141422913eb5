//go:build race

package receipt_test

// raceEnabled is true in a build with the race detector, which makes the
// exhaustive tamper tests about twenty times slower: they then flip bits
// only.
const raceEnabled = true
