package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fwpush/fwpush/lockfile"
	"github.com/fwpush/fwpush/runner"
)

// defaultLockWait is how long run and check wait for another run of the
// same inventory on this machine: longer than a run of a large fleet
// takes, short enough that a stuck one does not pile up every cron run
// after it.
const defaultLockWait = 10 * time.Minute

// lockWaitUsage is the --lock-wait flag's help.
const lockWaitUsage = "how long to wait for another run of this inventory on this machine before giving up (0: do not wait)"

// lockDir is the directory of the inventories' locks: "" is the user's
// (see lockfile.Dir). The tests set one of their own, so that they leave
// nothing in the machine's (a test that builds fwpush, with -ldflags
// "-X main.lockDir=DIR").
var lockDir string

// lockInventory makes runs of one inventory on this machine wait for each
// other instead of interleaving (a cron run and an operator's run, say):
// exclusively for run, shared for check, which may run beside another
// check but not beside a run that changes what it probes. The lock is the
// inventory's real path (symlinks resolved, so that two names of one file
// are one inventory), in a directory only this user can write (see
// lockfile). waiting is called once, with the holder, if another run
// holds it; past wait, or on a signal, the command ends. Hosts have locks
// of their own (see runner/remote), for runs from other machines.
func lockInventory(ctx context.Context, path string, shared bool, wait time.Duration, waiting func(holder string)) (unlock func(), err error) {
	if _, err := filepath.Abs(path); err != nil {
		return nil, err
	}
	l, err := lockfile.Acquire(ctx, inventoryKey(path), lockfile.Options{Dir: lockDir, Shared: shared, Wait: wait, Waiting: waiting, Who: runner.Who()})
	var busy *lockfile.BusyError
	switch {
	case err == nil:
		return l.Release, nil
	case ctx.Err() != nil:
		return nil, &exitError{code: interruptCode(ctx), err: errors.New("interrupted while waiting for another run of this inventory")}
	case errors.As(err, &busy):
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("another run of this inventory is in progress on this machine: %w: nothing done (--lock-wait waits longer)", err)}
	}
	return nil, &exitError{code: exitFailed, err: err}
}

// holderOf is how a waiting message names the run it waits for.
func holderOf(holder string) string {
	if holder == "" {
		return ""
	}
	return " (" + holder + ")"
}
