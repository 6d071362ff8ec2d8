//go:build race

package main

// raceEnabled says this test binary was built with -race: the end-to-end
// tests then run a normal build of fwpush but where raceCLI says.
const raceEnabled = true
