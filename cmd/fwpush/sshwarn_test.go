package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An ssh_config Include loop is invalid input (exit 3), named as a loop.
func TestSSHConfigIncludeLoop(t *testing.T) {
	site := copyExample(t)
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("Include "+cfg+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{"run", "check"} {
		code, _, errs := fwpush(t, command, "-F", cfg, site)
		if want := "fwpush: ssh_config " + cfg + ": Include nests more than 5 files deep: an Include loop?\n"; code != exitInvalid || errs != want {
			t.Errorf("%s: exit %d, stderr %q; want exit 3 and %q", command, code, errs, want)
		}
	}
}

// ProxyCommand, KnownHostsCommand and LocalCommand, which fwpush does not
// act on, are each named once with the hosts they are set for, and what
// fwpush does instead; run --quiet says nothing of them.
func TestSSHConfigIgnoredWarned(t *testing.T) {
	site := copyExample(t)
	cfg := filepath.Join(t.TempDir(), "config")
	body := "Host mysql-*\n  ProxyCommand ssh -W %h:%p jump.example.org\n" +
		"Host 203.0.113.10\n  KnownHostsCommand /usr/local/bin/keys %H\n" +
		"Host *\n  LocalCommand echo connected\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// No key: no host is tried, and nothing leaves this machine.
	noKey := filepath.Join(t.TempDir(), "no-key")
	_, _, errs := fwpush(t, "run", "--dry-run", "--identity", noKey, "-F", cfg, site)
	want := []string{
		"fwpush: warning: ssh_config sets ProxyCommand for 2 hosts (mysql-1, mysql-2): fwpush does not run it; it reaches every host through the inventory's bastions",
		"fwpush: warning: ssh_config sets KnownHostsCommand for 1 host (tunnel-1): fwpush does not run it; it checks host keys against known_hosts files only",
	}
	for _, w := range want {
		if strings.Count(errs, w) != 1 {
			t.Errorf("stderr:\n%s\nwant once: %q", errs, w)
		}
	}
	if strings.Contains(errs, "LocalCommand") {
		t.Errorf("LocalCommand without PermitLocalCommand yes does nothing in ssh either, but was warned of:\n%s", errs)
	}
	if _, _, errs := fwpush(t, "run", "--dry-run", "--quiet", "--identity", noKey, "-F", cfg, site); strings.Contains(errs, "warning") {
		t.Errorf("run --quiet warned:\n%s", errs)
	}
}
