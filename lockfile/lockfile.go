// Package lockfile is fwpush's lock on an inventory on the machine that
// runs it, so that two runs of one inventory there (a cron run and an
// operator's, say) wait for each other instead of interleaving. Hosts have
// locks of their own, for runs from other machines (see runner/remote).
//
// The lock is an flock(2) on a file in a directory only its owner can
// write: no other local user can hold it first and keep the owner's runs
// waiting, or plant a symbolic link there. The directory and the file are
// checked (owner, mode, no symbolic link) before the lock is taken. The
// holder writes who it is into the file, for those who wait; the wait is
// bounded, and ends at once when its context does.
package lockfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Where the locks live: root's in a directory of fwpush's own under /run
// (not /run/fwpush, which is fwpush's on the hosts it manages, and this
// machine may be one of them); another user's in $XDG_RUNTIME_DIR, which
// is the user's alone, else in a directory of the user's own under /tmp,
// named with the uid. Neither depends on $TMPDIR, which a cron job and an
// operator's shell may set differently.
const (
	runDir  = "/run"
	rootDir = "fwpush-controller"
	tmpDir  = "/tmp"
)

// Dir returns the directory of the effective user's locks, made if it
// does not exist, and checked: a directory (not a symbolic link) of that
// user's that no one else may write to.
func Dir() (string, error) {
	return dirFor(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR"), runDir, tmpDir)
}

// dirFor is Dir for the user euid, with $XDG_RUNTIME_DIR xdg, and /run
// and /tmp at run and tmp. An $XDG_RUNTIME_DIR that is not the user's
// own (su keeps the caller's) is passed over for the directory under tmp.
func dirFor(euid int, xdg, run, tmp string) (string, error) {
	if euid == 0 {
		if fi, err := os.Stat(run); err == nil && fi.IsDir() {
			return private(filepath.Join(run, rootDir), euid)
		}
	} else if xdg != "" && filepath.IsAbs(xdg) && checkDir(xdg, euid) == nil {
		return xdg, nil
	}
	return private(filepath.Join(tmp, "fwpush-"+strconv.Itoa(euid)), euid)
}

// private makes dir, mode 0700, unless it exists, and checks it.
func private(dir string, euid int) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("lock directory: %w", err)
	}
	if err := checkDir(dir, euid); err != nil {
		return "", err
	}
	return dir, nil
}

// checkDir refuses dir unless it is a directory, not a symbolic link,
// owned by euid and writable by no one else.
func checkDir(dir string, euid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("lock directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("lock directory %s is a symbolic link: refused, as someone else may have made it; remove it", dir)
	case !fi.IsDir():
		return fmt.Errorf("lock directory %s is not a directory: remove it", dir)
	case !ok:
		return fmt.Errorf("lock directory %s: no owner to check", dir)
	case int(st.Uid) != euid:
		return fmt.Errorf("lock directory %s belongs to uid %d, not to uid %d, who runs fwpush: refused, as that user could hold every lock in it; remove it", dir, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("lock directory %s is writable by others (mode %04o): refused; chmod go-w it, or remove it", dir, fi.Mode().Perm())
	}
	return nil
}

// Name is the lock file of key (an inventory's real path) in its
// directory.
func Name(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "fwpush-" + hex.EncodeToString(sum[:8]) + ".lock"
}

// Options say how to take a lock.
type Options struct {
	// Dir is the lock's directory, checked as Dir's; "" is Dir().
	Dir string
	// Shared takes a shared lock (many holders), else an exclusive one.
	Shared bool
	// Wait is how long to wait while another holds the lock; 0 does not
	// wait.
	Wait time.Duration
	// Waiting is called once when another holds the lock, with what that
	// holder wrote (see Who).
	Waiting func(holder string)
	// Who names this process to those who wait ("user@host pid N"); the
	// time it took the lock is added.
	Who string
}

// poll is how often a waiter tries the lock again. flock(2) cannot be
// woken by a context: a waiter polls, and stops at once when its
// context ends.
const poll = 100 * time.Millisecond

// BusyError is a lock another process held for all of Options.Wait.
type BusyError struct {
	Path   string
	Holder string // what the holder wrote; "" when nothing
	Waited time.Duration
}

func (e *BusyError) Error() string {
	holder := e.Holder
	if holder == "" {
		holder = "a process that did not say who it is"
	}
	if e.Waited <= 0 {
		return fmt.Sprintf("held by %s (lock %s)", holder, e.Path)
	}
	return fmt.Sprintf("held by %s (lock %s); waited %s", holder, e.Path, e.Waited)
}

// Lock is a lock held; Release lets it go.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock of key: at once, or once the others let go of
// it, within o.Wait. Past it the error is a *BusyError; when ctx ends
// first, ctx's error.
func Acquire(ctx context.Context, key string, o Options) (*Lock, error) {
	dir := o.Dir
	if dir == "" {
		d, err := Dir()
		if err != nil {
			return nil, err
		}
		dir = d
	} else if err := checkDir(dir, os.Geteuid()); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, Name(key))
	how := syscall.LOCK_EX
	if o.Shared {
		how = syscall.LOCK_SH
	}
	start := time.Now()
	told := false
	for {
		f, err := open(path)
		if err != nil {
			return nil, err
		}
		for {
			err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			holder := readHolder(f)
			if time.Since(start) >= o.Wait {
				f.Close()
				return nil, &BusyError{Path: path, Holder: holder, Waited: o.Wait}
			}
			if !told && o.Waiting != nil {
				o.Waiting(holder)
			}
			told = true
			select {
			case <-ctx.Done():
				f.Close()
				return nil, ctx.Err()
			case <-time.After(min(poll, max(time.Millisecond, o.Wait-time.Since(start)))):
			}
		}
		// The holder we waited for may have removed the file: then this
		// lock is on a file nobody else will ever see. Start again.
		if same, err := sameFile(f, path); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			continue
		}
		l := &Lock{f: f, path: path}
		l.write(o.Who, o.Shared)
		return l, nil
	}
}

// open opens the lock file at path, made if need be, never through a
// symbolic link, and checks that it is a regular file of this user's.
func open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("lock %s is a symbolic link: refused, as someone else may have planted it; remove it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("lock %s is not a regular file: refused; remove it", path)
	case !ok || int(st.Uid) != os.Geteuid():
		f.Close()
		return nil, fmt.Errorf("lock %s does not belong to uid %d, who runs fwpush: refused; remove it", path, os.Geteuid())
	}
	return f, nil
}

// write records who holds the lock, and since when, for those who wait.
// Shared holders overwrite each other: a waiter learns of one of them.
func (l *Lock) write(who string, shared bool) {
	if who == "" {
		return
	}
	line := who + ", since " + time.Now().Format("2006-01-02 15:04:05 MST") + "\n"
	if !shared {
		_ = l.f.Truncate(0)
	}
	_, _ = l.f.WriteAt([]byte(line), 0)
}

// readHolder reads what the holder of the lock open in f wrote: its first
// line, printable characters only.
func readHolder(f *os.File) string {
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, line))
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Release lets the lock go. It removes the file when no one else holds
// or waits on it (an exclusive lock can be had at once): a waiter on a
// removed file would start again anyway, but leaving it is harmless.
func (l *Lock) Release() {
	if syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		os.Remove(l.path)
	}
	l.f.Close()
}

// sameFile reports whether the open file f is still the one at path.
func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
