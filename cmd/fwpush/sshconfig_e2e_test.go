package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// cliHome runs fwpush on the lab's controller as an operator whose HOME is
// home: without the lab's FWPUSH_IDENTITY and FWPUSH_KNOWN_HOSTS, and
// without ssh-agent, so that only ssh_config says how to reach the fleet.
func cliHome(t *testing.T, l *lab.Lab, home string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := cliCommand(t, l, nil, args...)
	var env []string
	for _, kv := range cmd.Env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case lab.EnvIdentity, lab.EnvKnownHosts, "HOME", "SSH_AUTH_SOCK":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "HOME="+home)
	return runCLI(t, cmd, strings.Join(args, " ")+" (HOME="+home+")")
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSSHConfigInLab: an inventory that says nothing of keys, known_hosts,
// users or ports works from the operator's ~/.ssh/config, as `ssh -J
// bastion db-1` would; -F reads another file; a missing key is one
// leading error line; --accept-new records hashed addresses when
// HashKnownHosts says so.
func TestSSHConfigInLab(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The example without user, port, identity and known_hosts.
	bare := regexp.MustCompile(`(?m)^(user|port|identity|known_hosts) +=.*\n`).ReplaceAll(src, nil)
	if bytes.Contains(bare, []byte("identity")) || bytes.Equal(bare, src) {
		t.Fatal("examples/site.toml no longer sets [ssh] as this test expects")
	}
	site := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(site, bare, 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, site)

	home := t.TempDir()
	writeConfig(t, filepath.Join(home, ".ssh", "config"), `
Host bastion
  HostName 203.0.113.10
  User root

Host haproxy-www mysql-* wordpress-*
  ProxyJump bastion

Host *
  IdentityFile `+l.Identity+`
  UserKnownHostsFile `+l.KnownHosts+`
  GlobalKnownHostsFile /dev/null
`)
	code, out, errs := cliHome(t, l, home, "run", "--no-verify", site)
	if code != exitOK || !strings.Contains(out, "6 applied") || errs != "" {
		t.Errorf("run with only ~/.ssh/config: exit %d, want every host applied", code)
	}

	t.Run("a missing key is one leading error line", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "no-key")
		writeConfig(t, cfg, "Host *\n  IdentityFile ~/.ssh/nothing_here\n  UserKnownHostsFile "+l.KnownHosts+"\n")
		code, out, errs := cliHome(t, l, home, "run", "-F", cfg, site)
		want := "fwpush: no host tried: no SSH key: identity " + filepath.Join(home, ".ssh", "nothing_here") + " does not exist, and no ssh-agent (SSH_AUTH_SOCK is not set)\n"
		if code != exitFailed || errs != want || !strings.Contains(out, ": 6 not tried\n") || strings.Contains(out, "error:") {
			t.Errorf("exit %d, stderr %q; want exit 1, %q and every host not tried", code, errs, want)
		}
	})

	t.Run("--accept-new records hashed addresses when HashKnownHosts says so", func(t *testing.T) {
		dir := t.TempDir()
		learned, cfg := filepath.Join(dir, "known_hosts"), filepath.Join(dir, "config")
		writeConfig(t, cfg, "Host *\n  IdentityFile "+l.Identity+"\n  UserKnownHostsFile "+learned+"\n  GlobalKnownHostsFile /dev/null\n  HashKnownHosts yes\n")
		if code, _, _ := cliHome(t, l, home, "run", "--dry-run", "--accept-new", "-F", cfg, site); code != exitOK {
			t.Fatalf("--accept-new: exit %d", code)
		}
		data, _ := os.ReadFile(learned)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != len(siteHosts) || strings.Contains(string(data), "198.18.") || strings.Contains(string(data), "203.0.113.") {
			t.Errorf("recorded:\n%s\nwant %d hashed entries", data, len(siteHosts))
		}
		for _, line := range lines {
			if !strings.HasPrefix(line, "|1|") {
				t.Errorf("an entry not hashed: %q", line)
			}
		}
		if code, _, _ := cliHome(t, l, home, "run", "--dry-run", "-F", cfg, site); code != exitOK {
			t.Errorf("with the hashed keys: exit %d, want 0", code)
		}
	})
}
