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
// reports and exits 128 + the signal's number, as a shell reports a
// command a signal ended (130 for SIGINT, 143 for SIGTERM, 129 for
// SIGHUP); every other phase (loading, compiling, waiting for the lock)
// stops at once. A second signal kills fwpush at once; the guards of hosts
// it was applying then restore their old rules by themselves.
func main() {
	os.Exit(runWithSignals(os.Args[1:]))
}

// runWithSignals runs the CLI on the process's own I/O, interrupted by
// signals as main says.
func runWithSignals(args []string) int {
	if stopProfiles := startProfiles(); stopProfiles != nil {
		defer stopProfiles()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		signal.Stop(sigs) // the next signal has its default effect
		if s, ok := sig.(syscall.Signal); ok {
			cancel(signalled{s})
		}
	}()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// signalled is the cause of a context that a signal ended.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string { return s.sig.String() + " received" }

// Is makes a signalled context's cause read as context.Canceled.
func (s signalled) Is(target error) bool { return target == context.Canceled }

// interruptCode is the exit status of a command that ctx's end
// interrupted: 128 + the signal's number, exitInterrupted (SIGINT's) when
// no signal ended it.
func interruptCode(ctx context.Context) int {
	if s, ok := context.Cause(ctx).(signalled); ok {
		return 128 + int(s.sig)
	}
	return exitInterrupted
}
