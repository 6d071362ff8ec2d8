package transport

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSSHConfigLookup(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	me := "root"
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	sys := []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	userKnown := []string{"/home/op/.ssh/known_hosts", "/home/op/.ssh/known_hosts.d/" + me}
	tests := []struct {
		name       string
		files      []string
		host, addr string
		want       HostConfig
	}{
		{
			name:  "the tunnel, found by the HostName of the ProxyJump's host, which lends it user and port",
			files: []string{"testdata/ssh_config.user"}, host: "tunnel-1", addr: "203.0.113.10",
			want: HostConfig{User: "ops", Port: 2222, IdentityFiles: []string{"/home/op/.ssh/ops_ed25519"}, UserKnownHosts: userKnown, GlobalKnownHosts: sys, HashKnownHosts: true},
		},
		{
			name:  "a host by the HostName of its alias, then a pattern of its address",
			files: []string{"testdata/ssh_config.user"}, host: "mysql-1", addr: "198.18.0.31",
			want: HostConfig{User: "dba", Port: 2200, IdentityFiles: []string{"/home/op/.ssh/private_198.18.0.31"}, UserKnownHosts: userKnown, GlobalKnownHosts: sys, HashKnownHosts: true},
		},
		{
			name:  "a host by its inventory name, a negated pattern not matching",
			files: []string{"testdata/ssh_config.user"}, host: "www.example.org", addr: "198.51.100.5",
			want: HostConfig{User: "web", UserKnownHosts: userKnown, GlobalKnownHosts: sys, HashKnownHosts: true},
		},
		{
			name:  "a negated pattern",
			files: []string{"testdata/ssh_config.user"}, host: "skip.example.org", addr: "198.51.100.6",
			want: HostConfig{UserKnownHosts: userKnown, GlobalKnownHosts: sys, HashKnownHosts: true},
		},
		{
			name:  "the user's file first, the system's fills the rest; IdentityFiles add up",
			files: []string{"testdata/ssh_config.user", "testdata/ssh_config.system"}, host: "mysql-2", addr: "198.18.0.32",
			want: HostConfig{User: "nobody-from-system", Port: 2200, IdentityFiles: []string{"/home/op/.ssh/private_198.18.0.32", "/etc/ssh/fleet_key"},
				UserKnownHosts: userKnown, GlobalKnownHosts: []string{"/etc/ssh/fleet_known_hosts"}, HashKnownHosts: true},
		},
		{
			name:  "the lab's: by address, no global file",
			files: []string{"testdata/ssh_config.lab"}, host: "tunnel-1", addr: "203.0.113.10",
			want: HostConfig{User: "root", Port: 22, IdentityFiles: []string{"/var/lib/fwpush-lab/site/id_ed25519"}, UserKnownHosts: []string{"/var/lib/fwpush-lab/site/known_hosts"}, GlobalKnownHosts: []string{"/dev/null"}},
		},
		{
			name:  "no file: OpenSSH's global known_hosts only",
			files: []string{"testdata/missing"}, host: "mysql-1", addr: "198.18.0.31",
			want: HostConfig{GlobalKnownHosts: sys},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadSSHConfig(tt.files...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Lookup(tt.host, tt.addr)); diff != "" {
				t.Errorf("Lookup(%s, %s) (-want +got):\n%s", tt.host, tt.addr, diff)
			}
		})
	}
}

func TestParseJump(t *testing.T) {
	for in, want := range map[string]jump{
		"bastion":                 {host: "bastion"},
		"ops@bastion":             {user: "ops", host: "bastion"},
		"ops@203.0.113.10:2222":   {user: "ops", host: "203.0.113.10", port: 2222},
		"ssh://ops@bastion:22":    {user: "ops", host: "bastion", port: 22},
		"[2001:db8::10]:2222":     {host: "2001:db8::10", port: 2222},
		"me@corp.example@bastion": {user: "me@corp.example", host: "bastion"},
	} {
		got, ok := parseJump(in)
		if !ok || got != want {
			t.Errorf("parseJump(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	if _, ok := parseJump("bastion:99999"); ok {
		t.Error("a port out of range was accepted")
	}
}

func TestLoadSSHConfigErrors(t *testing.T) {
	if _, err := LoadSSHConfig("testdata"); err == nil {
		t.Error("a directory read as ssh_config")
	}
}

// The keys fwpush does not act on are named, for a host found by its
// inventory name, an alias whose HostName is its address, or its address.
func TestSSHConfigIgnored(t *testing.T) {
	c, err := LoadSSHConfig("testdata/ssh_config.commands")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		addrs []string
		want  []string
	}{
		{"tunnel-1", []string{"198.18.0.10", "203.0.113.10"}, []string{"ProxyCommand"}},
		{"bastion", nil, []string{"ProxyCommand"}},
		{"mysql-1", []string{"198.18.0.31"}, []string{"KnownHostsCommand"}}, // LocalCommand without PermitLocalCommand does nothing
		{"mysql-2", []string{"198.18.0.32"}, []string{"LocalCommand"}},
		{"mysql-3", []string{"198.18.0.33"}, nil}, // none
		{"web-1", []string{"198.18.0.40"}, nil},
	} {
		if diff := cmp.Diff(tc.want, c.Ignored(tc.name, tc.addrs...)); diff != "" {
			t.Errorf("Ignored(%s, %v) (-want +got):\n%s", tc.name, tc.addrs, diff)
		}
	}
	if got := (*SSHConfig)(nil).Ignored("x", "198.18.0.1"); got != nil {
		t.Errorf("no configuration: %v", got)
	}
}

// An Include loop is named as one.
func TestLoadSSHConfigIncludeLoop(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("Include "+b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("Include "+a+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSSHConfig(a)
	if want := "ssh_config " + a + ": Include nests more than 5 files deep: an Include loop?"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
