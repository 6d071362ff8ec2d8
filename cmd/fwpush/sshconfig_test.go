package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSSHConfigCommand: fwpush ssh-config shows what run would dial for
// each host, as the inventory, ssh_config, the flags and the variables
// decide it, contacting nothing.
func TestSSHConfigCommand(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("FWPUSH_IDENTITY", "")
	t.Setenv("FWPUSH_KNOWN_HOSTS", "")
	empty := filepath.Join(t.TempDir(), "empty_config")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const bare = "testdata/docs/ssh/site.toml"
	const config = "testdata/docs/ssh/ssh_config"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{
			name: "the inventory says it all",
			args: []string{"ssh-config", "-F", empty, "--host", "mysql-1", exampleSite},
			want: `host mysql-1 (role db)
  hostname 198.18.0.31
  port 22
  user root
  become none
  identityfile ~/.ssh/id_ed25519
  knownhosts ~/.ssh/known_hosts
  knownhosts /etc/ssh/ssh_known_hosts (read only)
  knownhosts /etc/ssh/ssh_known_hosts2 (read only)
  proxyjump root@203.0.113.10:22 (tunnel-1)
`,
		},
		{
			name: "ssh_config fills what it leaves out",
			args: []string{"ssh-config", "-F", config, "--host", "tunnel-1", bare},
			want: `host tunnel-1 (role tunnel)
  hostname 203.0.113.10
  port 22
  user ops
  become sudo
  identityfile ` + home + `/.ssh/ops_ed25519
  knownhosts ~/.ssh/known_hosts
  knownhosts /etc/ssh/ssh_known_hosts (read only)
  knownhosts /etc/ssh/ssh_known_hosts2 (read only)
`,
		},
		{
			name: "the flags and the variables win",
			args: []string{"ssh-config", "-F", config, "--identity", "/keys/fleet", "--host", "mysql-1", bare},
			env:  map[string]string{"FWPUSH_IDENTITY": "/keys/other", "FWPUSH_KNOWN_HOSTS": "/keys/known_hosts", "SSH_AUTH_SOCK": "/run/agent.sock"},
			want: `host mysql-1 (role db)
  hostname 198.18.0.31
  port 22
  user deploy
  become sudo
  identityfile /keys/fleet
  identityagent /run/agent.sock
  knownhosts /keys/known_hosts
  knownhosts /etc/ssh/ssh_known_hosts (read only)
  knownhosts /etc/ssh/ssh_known_hosts2 (read only)
  proxyjump ops@203.0.113.10:22 (tunnel-1)
`,
		},
		{
			name: "a list of bastions",
			args: []string{"ssh-config", "-F", empty, "--host", "bastion-e2", "../../examples/sites.toml"},
			want: `host bastion-e2 (role tunnel, site east)
  hostname 198.18.0.12
  port 22
  user root
  become none
  identityfile ~/.ssh/id_ed25519
  knownhosts ~/.ssh/known_hosts
  knownhosts /etc/ssh/ssh_known_hosts (read only)
  knownhosts /etc/ssh/ssh_known_hosts2 (read only)
  proxyjump root@203.0.113.10:22 (bastion-e1)
  # when bastion-e1 does not answer: directly, at root@203.0.113.12:22
`,
		},
		{
			name: "--via",
			args: []string{"ssh-config", "-F", empty, "--via", "bastion-e2", "--host", "app-1", "../../examples/sites.toml"},
			want: `host app-1 (role app, site east)
  hostname 198.18.0.21
  port 22
  user root
  become none
  identityfile ~/.ssh/id_ed25519
  knownhosts ~/.ssh/known_hosts
  knownhosts /etc/ssh/ssh_known_hosts (read only)
  knownhosts /etc/ssh/ssh_known_hosts2 (read only)
  proxyjump root@203.0.113.12:22 (bastion-e2)
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, out, errs := fwpush(t, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("fwpush %q (-want +got):\n%s", tt.args, diff)
			}
		})
	}

	t.Run("every host", func(t *testing.T) {
		code, out, _ := fwpush(t, "ssh-config", "-F", empty, exampleSite)
		if code != exitOK || strings.Count(out, "\nhost ")+1 != 6 || strings.Count(out, "proxyjump ") != 5 {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("mistakes", func(t *testing.T) {
		for args, want := range map[string]string{
			"--host nope":    "fwpush: --host nope: no such host in " + exampleSite + "\n",
			"--via mysql-1":  "fwpush: --via mysql-1: not a bastion: the hosts of the inventory accept SSH from tunnel-1 only\n",
			"--via tunnel-2": "fwpush: --via tunnel-2: no such host\n",
		} {
			code, out, errs := fwpush(t, append(append([]string{"ssh-config", "-F", empty}, strings.Fields(args)...), exampleSite)...)
			if code != exitInvalid || out != "" || errs != want {
				t.Errorf("ssh-config %s: exit %d, stdout %q, stderr %q; want exit 3 and %q", args, code, out, errs, want)
			}
		}
	})
}
