//go:build !race

package main

// raceEnabled: the race detector slows Pion's data path about fivefold; tests move less data.
const raceEnabled = false
