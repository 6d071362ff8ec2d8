package runner

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A second run of the same inventory waits until the first one ends.
func TestLockSerialisesRunsOfOneInventory(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "site.toml")
	unlock, err := Lock(inv, func() { t.Error("the first run had to wait") })
	if err != nil {
		t.Fatal(err)
	}
	var waited, got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		unlock2, err := Lock(inv, func() { waited.Store(true) })
		if err != nil {
			t.Error(err)
			return
		}
		got.Store(true)
		unlock2()
	}()
	// The second caller must report waiting and must not get the lock
	// while the first one holds it.
	for !waited.Load() {
		time.Sleep(time.Millisecond)
	}
	if got.Load() {
		t.Fatal("the second run got the lock while the first held it")
	}
	unlock()
	<-done
	if !got.Load() {
		t.Fatal("the second run never got the lock")
	}

	// Another inventory is not held up.
	other, err := Lock(filepath.Join(t.TempDir(), "other.toml"), func() { t.Error("another inventory had to wait") })
	if err != nil {
		t.Fatal(err)
	}
	other()
}
