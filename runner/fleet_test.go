package runner

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/transport"
)

// TestTargetForSSHConfig: the inventory wins where it says something, and
// ssh_config fills what it leaves out.
func TestTargetForSSHConfig(t *testing.T) {
	cfg, err := transport.LoadSSHConfig("testdata/ssh_config")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ssh  string // the inventory's [ssh] settings
		host string
		want transport.Target
	}{
		{"nothing said: all from ssh_config", "", "mysql-1",
			transport.Target{Name: "mysql-1", Addr: "198.18.0.31:2200", User: "admin", Identities: []string{"/keys/private"}}},
		{"the tunnel, by its HostName", "", "tunnel-1",
			transport.Target{Name: "tunnel-1", Addr: "203.0.113.10:22", User: "ops", Identities: []string{"/keys/ops"}}},
		{"the inventory's user and port win", "user = \"root\"\nport = 22\n", "mysql-1",
			transport.Target{Name: "mysql-1", Addr: "198.18.0.31:22", User: "root", Identities: []string{"/keys/private"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := inventory.Parse("site.toml", []byte("[ssh]\ntunnel = \"tunnel-1\"\n"+tt.ssh+`
[hosts.tunnel-1]
role = "tunnel"
public_ip = "203.0.113.10"
private_ip = "198.18.0.10"
[hosts.mysql-1]
role = "db"
private_ip = "198.18.0.31"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.db]
template = "private"
`))
			if err != nil {
				t.Fatal(err)
			}
			h, _ := inv.Host(tt.host)
			// The tunnel carries the fleet: it is reached on its public address.
			public := h.Name == inv.SSH.Tunnel
			if diff := cmp.Diff(tt.want, TargetFor(h, public, cfg)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got := TargetFor(h, public, nil); got.Identities != nil || got.User != h.User {
				t.Errorf("TargetFor without ssh_config: %+v", got)
			}
		})
	}
}
