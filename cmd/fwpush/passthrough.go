package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// runPassthrough runs c (made without a context that signals cancel) on
// the terminal's stdin and the command's outputs, and makes its exit
// status fwpush's. The signals that interrupt fwpush are the command's to
// act on: fwpush run under lab exec settles its hosts, reports and exits
// 130, which lab exec then does too (see passthrough).
func runPassthrough(cmd *cobra.Command, c *exec.Cmd) error {
	c.Stdin = os.Stdin
	c.Stdout = cmd.OutOrStdout()
	c.Stderr = cmd.ErrOrStderr()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return passthrough(c, sigs, foreground)
}

// passthrough starts c and waits for it, passing on each signal from
// sigs, and returns its exit status as an *exitError (128+N when a signal
// ended it, as shells report it). A ^C, or a hangup, which the terminal
// (or the shell) sends to the whole foreground job, has reached c already
// when shared says fwpush is in that job: it is not sent twice, since a
// second signal stops fwpush run at once, without its report.
func passthrough(c *exec.Cmd, sigs <-chan os.Signal, shared func() bool) error {
	if err := c.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	for {
		select {
		case err := <-done:
			return exitStatus(err)
		case s := <-sigs:
			if s == syscall.SIGTERM || !shared() {
				_ = c.Process.Signal(s) // it may have ended already
			}
		}
	}
}

// exitStatus is the exit status of a command Wait returned err for.
func exitStatus(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return &exitError{code: 128 + int(ws.Signal())}
	}
	return &exitError{code: ee.ExitCode()}
}

// foreground reports whether fwpush is in the foreground job of its
// controlling terminal, where ^C and a hangup reach every process of the
// job, the command it runs included.
func foreground() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal: cron, a service
	}
	defer tty.Close()
	pgrp, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
