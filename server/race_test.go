//go:build race

package server_test

// raceEnabled is true in a build with the race detector.
const raceEnabled = true
