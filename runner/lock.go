package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock makes runs of one inventory wait for each other instead of
// interleaving (a cron run and an operator's run, say). The lock is an
// flock on a file named after the inventory's absolute path, so it is
// released by the kernel even when fwpush is killed. waiting is called
// once if the lock is held by another run.
func Lock(inventoryPath string, waiting func()) (unlock func(), err error) {
	abs, err := filepath.Abs(inventoryPath)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	path := filepath.Join(os.TempDir(), "fwpush-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if waiting != nil {
			waiting()
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() { f.Close() }, nil
}
