//go:build !race

package main

// raceEnabled is true in a build with the race detector; see race_test.go.
const raceEnabled = false
