package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockInventory makes runs of one inventory wait for each other instead of
// interleaving (a cron run and an operator's run, say): exclusively for
// run, shared for check, which may run beside another check but not beside
// a run that changes what it probes. The lock is an flock on a file named
// after the inventory's real path (symlinks resolved, so that two names of
// one file are one inventory), in a fixed place that does not depend on
// $TMPDIR: /run/lock as root, else $XDG_RUNTIME_DIR, else the temporary
// directory. The kernel releases it even when fwpush is killed; unlock
// removes the file when no one else holds it. waiting is called once if
// another run holds it. Hosts have locks of their own (see runner/remote),
// for runs from other machines.
func lockInventory(path string, shared bool, waiting func()) (unlock func(), err error) {
	real, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(real); err == nil {
		real = r
	}
	sum := sha256.Sum256([]byte(real))
	file := filepath.Join(lockDir(), "fwpush-"+hex.EncodeToString(sum[:8])+".lock")
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	for told := false; ; {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", file, err)
		}
		if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
			if !told && waiting != nil {
				waiting()
				told = true
			}
			if err := syscall.Flock(int(f.Fd()), how); err != nil {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", file, err)
			}
		}
		// The holder we waited for may have removed the file: then this
		// lock is on a file nobody else will ever see. Start again.
		if same, err := sameFile(f, file); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("lock %s: %w", file, err)
			}
			continue
		}
		return func() {
			// Remove the file only when nobody else holds or waits on it
			// (an exclusive lock can be had at once): a waiter on a
			// removed file would start again anyway, but leaving it is
			// harmless.
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				os.Remove(file)
			}
			f.Close()
		}, nil
	}
}

// sameFile reports whether the open file f is still the one at path.
func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// lockDir is where the locks of inventories live.
func lockDir() string {
	if os.Geteuid() == 0 {
		if fi, err := os.Stat("/run/lock"); err == nil && fi.IsDir() {
			return "/run/lock"
		}
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return d
	}
	return os.TempDir()
}
