package main

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// held reports whether lockInventory(path, shared) has to wait, releasing
// the lock again if it got it at once.
func held(t *testing.T, path string, shared bool) bool {
	t.Helper()
	var waited atomic.Bool
	got := make(chan func(), 1)
	go func() {
		unlock, err := lockInventory(path, shared, func() { waited.Store(true) })
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

	unlock, err := lockInventory(site, false, func() { t.Error("the first run had to wait") })
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
	unlock, err := lockInventory(site, true, func() { t.Error("the first check had to wait") })
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
	before, _ := filepath.Glob(filepath.Join(lockDir(), "fwpush-*.lock"))
	unlock, err := lockInventory(site, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	during, _ := filepath.Glob(filepath.Join(lockDir(), "fwpush-*.lock"))
	unlock()
	after, _ := filepath.Glob(filepath.Join(lockDir(), "fwpush-*.lock"))
	if len(during) != len(before)+1 || len(after) != len(before) {
		t.Errorf("lock files: %d before, %d while held, %d after; want one more while held only", len(before), len(during), len(after))
	}
}
