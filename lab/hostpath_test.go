package lab

import (
	"strings"
	"testing"

	"github.com/fwpush/fwpush/inventory"
)

func TestHostPath(t *testing.T) {
	l, err := New(loadSite(t), "site")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, path, want, err string }{
		{"mysql-1", "/etc/iptables/rules.v4", Root + "/site/hosts/mysql-1/etc-iptables/rules.v4", ""},
		{"mysql-1", "/var/lib/fwpush/applied", Root + "/site/hosts/mysql-1/var-lib-fwpush/applied", ""},
		{"tunnel-1", "/root/.ssh/authorized_keys", Root + "/site/hosts/tunnel-1/root/.ssh/authorized_keys", ""},
		{"tunnel-1", "/etc/iptables", Root + "/site/hosts/tunnel-1/etc-iptables", ""},
		{"mysql-1", "/etc/iptables-other/x", "", "not in a directory of the host's own"},
		{"mysql-1", "/etc/iptables/../passwd", "", "not in a directory of the host's own"},
		{"mysql-1", "/run/fwpush/guard", "", "not in a directory of the host's own"},
		{"nosuch", "/etc/iptables/rules.v4", "", `no host "nosuch"`},
	} {
		got, err := l.HostPath(tc.host, tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("HostPath(%s, %s) = %q, %v; want error %q", tc.host, tc.path, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("HostPath(%s, %s) = %q, %v; want %q", tc.host, tc.path, got, err, tc.want)
		}
	}
}

func TestFleetTOML(t *testing.T) {
	for _, n := range []int{2, 6, 150, 450} {
		inv, err := inventory.Parse("fleet.toml", FleetTOML(n))
		if err != nil {
			t.Fatalf("FleetTOML(%d): %v", n, err)
		}
		if len(inv.Hosts) != n {
			t.Errorf("FleetTOML(%d): %d hosts", n, len(inv.Hosts))
		}
		if _, err := New(inv, "fleet"); err != nil {
			t.Errorf("FleetTOML(%d): %v", n, err)
		}
	}
}
