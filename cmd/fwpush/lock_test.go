package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lockfile"
)

// held reports whether lockInventory(path, shared) has to wait, releasing
// the lock again if it got it at once.
func held(t *testing.T, path string, shared bool) bool {
	t.Helper()
	var waited atomic.Bool
	got := make(chan func(), 1)
	go func() {
		unlock, err := lockInventory(context.Background(), path, shared, time.Hour, func(string) { waited.Store(true) })
		if err != nil {
			t.Error(err)
			got <- func() {}
			return
		}
		got <- unlock
	}()
	for {
		select {
		case unlock := <-got:
			unlock()
			return false
		default:
		}
		if waited.Load() {
			// It has the lock once the test releases it, and lets go.
			done := make(chan struct{})
			go func() { (<-got)(); close(done) }()
			t.Cleanup(func() { <-done })
			return true
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLockInventory(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(site, []byte("# an inventory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(site, link); err != nil {
		t.Fatal(err)
	}

	unlock, err := lockInventory(t.Context(), site, false, 0, func(string) { t.Error("the first run had to wait") })
	if err != nil {
		t.Fatal(err)
	}
	// The same file under another name, or with another $TMPDIR: the same
	// inventory, held.
	if !held(t, link, false) {
		t.Error("a run through a symlink did not wait for the run of its target")
	}
	t.Setenv("TMPDIR", t.TempDir())
	if !held(t, site, false) {
		t.Error("a run with another $TMPDIR did not wait")
	}
	if !held(t, site, true) {
		t.Error("a check did not wait for a run")
	}
	// Another inventory is not held up.
	if held(t, filepath.Join(dir, "other.toml"), false) {
		t.Error("another inventory had to wait")
	}
	unlock()
}

func TestLockInventoryShared(t *testing.T) {
	site := filepath.Join(t.TempDir(), "site.toml")
	unlock, err := lockInventory(t.Context(), site, true, 0, func(string) { t.Error("the first check had to wait") })
	if err != nil {
		t.Fatal(err)
	}
	if held(t, site, true) {
		t.Error("a check waited for another check")
	}
	if !held(t, site, false) {
		t.Error("a run did not wait for a check")
	}
	unlock()
}

// The lock file goes with the last holder.
func TestLockInventoryRemoved(t *testing.T) {
	site := filepath.Join(t.TempDir(), "site.toml")
	file := filepath.Join(lockDir, lockfile.Name(site))
	unlock, err := lockInventory(t.Context(), site, false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, during := os.Stat(file)
	unlock()
	if _, after := os.Stat(file); during != nil || after == nil {
		t.Errorf("lock file %s: %v while held, %v after; want it there while held only", file, during, after)
	}
}

// A run that finds the inventory held says by whom, waits --lock-wait,
// then gives up with exit 1 without contacting anything.
func TestRunLockWait(t *testing.T) {
	site := copyExample(t)
	unlock, err := lockInventory(t.Context(), site, false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	host, _ := os.Hostname()
	me := "@" + host + " pid " + strconv.Itoa(os.Getpid()) + ", since " // runner.Who, and the time
	for _, args := range [][]string{
		{"run", "--dry-run", "--lock-wait", "200ms", site},
		{"check", "--lock-wait", "200ms", site},
	} {
		code, out, errs := fwpush(t, args...)
		if code != exitFailed || out != "" ||
			!strings.Contains(errs, "in progress (") || !strings.Contains(errs, me) ||
			!strings.Contains(errs, "waiting for it (at most 200ms: --lock-wait)") ||
			!strings.Contains(errs, "fwpush: another run of this inventory is in progress on this machine: held by ") ||
			!strings.Contains(errs, "; waited 200ms: nothing done (--lock-wait waits longer)") {
			t.Errorf("fwpush %s: exit %d, stdout %q, stderr:\n%s\nwant exit 1, the holder named, no host contacted", strings.Join(args, " "), code, out, errs)
		}
	}
	// --lock-wait 0 does not wait, nor say it waits.
	code, _, errs := fwpush(t, "run", "--dry-run", "--lock-wait", "0", site)
	if code != exitFailed || strings.Contains(errs, "waiting") || !strings.Contains(errs, me) {
		t.Errorf("--lock-wait 0: exit %d, stderr:\n%s", code, errs)
	}
}

// copyExample copies examples/site.toml into a directory of the test's:
// an inventory of its own, whose lock no other test takes.
func copyExample(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(site, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return site
}

// The case: SIGTERM ends a run that waits for the lock at once,
// with 143, where the wait in flock(2) used to outlast it until the
// other run ended.
func TestLockWaitEndsOnSignal(t *testing.T) {
	site := copyExample(t)
	unlock, err := lockInventory(t.Context(), site, false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		bin, env := cliPath(t)
		cmd := exec.CommandContext(t.Context(), bin, "run", "--dry-run", site)
		cmd.Env = append(os.Environ(), env...)
		errs, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(errs)
		var said []string
		for sc.Scan() {
			said = append(said, sc.Text())
			if strings.Contains(sc.Text(), "waiting for it") {
				break
			}
		}
		code, rest := signalAndWait(t, cmd, sc, sig)
		said = append(said, rest...)
		if code != 128+int(sig) || !strings.Contains(strings.Join(said, "\n"), "fwpush: interrupted while waiting for another run of this inventory") {
			t.Errorf("%s while waiting for the lock: exit %d, stderr:\n%s\nwant exit %d and the reason", sig, code, strings.Join(said, "\n"), 128+int(sig))
		}
	}
}
