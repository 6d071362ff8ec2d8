//go:build race

package main

// raceEnabled tells tests that build fwpush to build it as this test
// binary was built, so that the packages it needs are already compiled.
const raceEnabled = true
