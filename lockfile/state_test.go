package lockfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	t.Setenv(EnvStateDir, dir)
	got, err := StateDir()
	if err != nil || got != dir {
		t.Fatalf("StateDir() = %q, %v; want %q", got, err, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v, %v; want mode 0700", fi, err)
	}
	if data, err := ReadState(dir, "/etc/site.toml", "fleet"); data != nil || err != nil {
		t.Errorf("nothing written yet: got %q, %v", data, err)
	}
	for _, s := range []string{"one\n", "two\n"} {
		if err := WriteState(dir, "/etc/site.toml", "fleet", []byte(s)); err != nil {
			t.Fatal(err)
		}
		if data, err := ReadState(dir, "/etc/site.toml", "fleet"); string(data) != s || err != nil {
			t.Errorf("read back %q, %v; want %q", data, err, s)
		}
	}
	if data, _ := ReadState(dir, "/etc/other.toml", "fleet"); data != nil {
		t.Errorf("another inventory's state: %q", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the one state file (no temporary file left)", len(entries))
	}
	// A directory others may write to is refused: what it holds is
	// reported as fact.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := StateDir(); err == nil {
		t.Error("a state directory writable by others: no error")
	}
	t.Setenv(EnvStateDir, "relative")
	if _, err := StateDir(); err == nil {
		t.Error("a relative $FWPUSH_STATE_DIR: no error")
	}
}

func TestStateDirOfAUser(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root's is /var/lib/fwpush-controller")
	}
	home := t.TempDir()
	t.Setenv(EnvStateDir, "")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", home)
	got, err := StateDir()
	if want := filepath.Join(home, ".local", "state", "fwpush"); err != nil || got != want {
		t.Errorf("StateDir() = %q, %v; want %q", got, err, want)
	}
}
