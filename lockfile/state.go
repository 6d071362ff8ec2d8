package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvStateDir, when set, is the directory of the controller's state (see
// StateDir): the lab sets it to a directory of the lab's.
const EnvStateDir = "FWPUSH_STATE_DIR"

// Where the state of root's runs lives: /var/lib, not /run, since it must
// outlive a reboot of the controller; and not /var/lib/fwpush, which is
// fwpush's on the hosts it manages (this machine may be one of them).
const varLibDir = "/var/lib/fwpush-controller"

// StateDir returns the directory where fwpush keeps what one run of an
// inventory leaves for the next on this machine (the fleet it resolved):
// $FWPUSH_STATE_DIR if set; root's /var/lib/fwpush-controller; another
// user's $XDG_STATE_HOME/fwpush, else ~/.local/state/fwpush; else, with no
// home, the directory of the locks (see Dir), which does not outlive a
// reboot. It is made if need be, and checked as Dir is: a directory of the
// user's own that no one else may write to, since what it holds is
// reported as fact.
func StateDir() (string, error) {
	euid := os.Geteuid()
	if d := os.Getenv(EnvStateDir); d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("$%s=%s: not an absolute path", EnvStateDir, d)
		}
		return private(d, euid)
	}
	if euid == 0 {
		return private(varLibDir, euid)
	}
	base := os.Getenv("XDG_STATE_HOME")
	if home := os.Getenv("HOME"); base == "" && home != "" && filepath.IsAbs(home) {
		base = filepath.Join(home, ".local", "state")
	}
	if base == "" || !filepath.IsAbs(base) {
		return Dir()
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return private(filepath.Join(base, "fwpush"), euid)
}

// stateName is the file of key's state of kind ("fleet") in its
// directory, named as its lock is.
func stateName(key, kind string) string {
	return strings.TrimSuffix(Name(key), ".lock") + "." + kind
}

// ReadState returns what WriteState last wrote for key and kind in dir;
// nil, and no error, when nothing was.
func ReadState(dir, key, kind string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateName(key, kind)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return data, nil
}

// WriteState replaces the state of key and kind in dir with data,
// atomically: a temporary file in dir, then a rename.
func WriteState(dir, key, kind string, data []byte) error {
	path := filepath.Join(dir, stateName(key, kind))
	tmp, err := os.CreateTemp(dir, "."+stateName(key, kind)+".*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("state %s: %w", path, err)
	}
	return nil
}
