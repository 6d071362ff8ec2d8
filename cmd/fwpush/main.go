// Command fwpush locks a fleet of Linux servers into a private-network
// firewall policy, pushed over SSH through one tunnel host.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// main interrupts a command on SIGINT, SIGTERM and SIGHUP (the terminal
// closing): a run stops starting hosts, lets the ones in flight settle,
// reports and exits 130. A second signal kills fwpush at once; the guards
// of hosts it was applying then restore their old rules by themselves.
func main() {
	os.Exit(runWithSignals(os.Args[1:]))
}

// runWithSignals runs the CLI on the process's own I/O, interrupted by
// signals as main says.
func runWithSignals(args []string) int {
	if stopProfiles := startProfiles(); stopProfiles != nil {
		defer stopProfiles()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal has its default effect
	}()
	return run(ctx, args, os.Stdout, os.Stderr)
}
