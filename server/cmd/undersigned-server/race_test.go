//go:build race

package main

// raceEnabled is true in a build with the race detector, which makes the
// server several times slower and bigger: load tests loosen their bounds.
const raceEnabled = true
