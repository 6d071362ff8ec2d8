package inventory

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpAddrs compares addresses and prefixes by value; their fields are
// unexported. Where keys are written is not part of the model.
var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.IgnoreUnexported(Inventory{}),
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLoadExample(t *testing.T) {
	path := filepath.Join("..", "examples", "site.toml")
	inv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	private := func(name, ip string) *Host {
		return &Host{Name: name, Role: roleOf(name), PrivateIP: addr(ip), PublicIface: "eth0", PrivateIface: "eth1", User: "root", Port: 22, Become: "none", Given: Given{User: true, Port: true}, Backend: IPTables}
	}
	want := &Inventory{
		Path: path,
		SSH: SSH{
			User: "root", Port: 22, Identity: "~/.ssh/id_ed25519", KnownHosts: "~/.ssh/known_hosts",
			Tunnel: "tunnel-1", Tunnels: []string{"tunnel-1"}, Parallel: 20, Timeout: 10 * time.Second,
			RollbackAfter: DefaultRollbackAfter, // not in the file
			Given:         Given{User: true, Port: true, Identity: true, KnownHosts: true},
		},
		Interfaces: Interfaces{Public: "eth0", Private: "eth1"},
		Hosts: []*Host{
			{
				Name: "haproxy-www", Role: "lb", PublicIP: addr("203.0.113.11"), PrivateIP: addr("198.18.0.11"),
				PublicIP6: addr("2001:db8::11"), PublicIface: "eth0", PrivateIface: "eth1", User: "root", Port: 22, Become: "none", Given: Given{User: true, Port: true}, Backend: IPTables,
			},
			private("mysql-1", "198.18.0.31"),
			private("mysql-2", "198.18.0.32"),
			{
				Name: "tunnel-1", Role: "tunnel", PublicIP: addr("203.0.113.10"), PrivateIP: addr("198.18.0.10"),
				PublicIface: "eth0", PrivateIface: "eth1", User: "root", Port: 22, Become: "none", Given: Given{User: true, Port: true}, Backend: IPTables,
			},
			private("wordpress-1", "198.18.0.21"),
			private("wordpress-2", "198.18.0.22"),
		},
		Roles: []*Role{
			{
				Name: "app", Template: "private", LogDropped: true,
				Allow: []Allow{
					{From: "lb", FromRole: "lb", TCP: []int{80}},
					{From: "app", FromRole: "app", AllTCP: true},
					{From: "db", FromRole: "db", TCP: []int{3306}},
					{From: "198.51.100.0/24", FromCIDR: netip.MustParsePrefix("198.51.100.0/24"), TCP: []int{9100}},
				},
			},
			{
				Name: "db", Template: "private",
				Allow: []Allow{
					{From: "app", FromRole: "app", TCP: []int{3306}},
					{From: "db", FromRole: "db", TCP: []int{3306}},
				},
			},
			{Name: "lb", Template: "public", PublicTCP: []int{80, 443}},
			{Name: "tunnel", Template: "tunnel", PublicTCP: []int{22}},
		},
		Sites: []*Site{{Tunnels: []string{"tunnel-1"}}},
	}
	if diff := cmp.Diff(want, inv, cmpAddrs); diff != "" {
		t.Errorf("Load(%s) (-want +got):\n%s", path, diff)
	}

	if got := inv.Tunnel(); got == nil || got.Name != "tunnel-1" {
		t.Errorf("Tunnel() = %v, want tunnel-1", got)
	}
	var names []string
	for _, h := range inv.HostsOf("db") {
		names = append(names, h.Name)
	}
	if diff := cmp.Diff([]string{"mysql-1", "mysql-2"}, names); diff != "" {
		t.Errorf("HostsOf(db) (-want +got):\n%s", diff)
	}
	if _, ok := inv.Host("mysql-3"); ok {
		t.Error("Host(mysql-3) found a host that does not exist")
	}
	if r, ok := inv.Role("lb"); !ok || r.Name != "lb" {
		t.Errorf("Role(lb) = %v, %v", r, ok)
	}
	if _, ok := inv.Role("web"); ok {
		t.Error("Role(web) found a role that does not exist")
	}
}

// roleOf is the role of the example's private hosts, by name.
func roleOf(host string) string {
	if strings.HasPrefix(host, "mysql") {
		return "db"
	}
	return "app"
}

// Everything left out takes its default; a host's own user, port and
// interfaces replace the fleet's.
func TestParseDefaultsAndOverrides(t *testing.T) {
	src := `
[ssh]
tunnel = "bastion"
user = "deploy"

[interfaces]
private = "ens4"

[hosts.bastion]
role = "tunnel"
public_ip = "203.0.113.5"
private_ip = "198.18.0.5"
port = 2222
public_iface = "ens3"

[hosts.db-1]
role = "db"
private_ip = "198.18.0.6"
user = "root"
private_iface = "bond0.100"

[roles.tunnel]
template = "tunnel"
public_tcp = [2222, 22, 2222]

[roles.db]
template = "./db.tmpl"
allow = [
  { from = "tunnel", udp = [161] },
  { from = "198.51.100.7", tcp = [5432], udp = [53] },
]
`
	inv, err := Parse("dir/site.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Inventory{
		Path: "dir/site.toml",
		SSH: SSH{
			User: "deploy", Port: DefaultPort, Identity: DefaultIdentity, KnownHosts: DefaultKnownHosts,
			Tunnel: "bastion", Tunnels: []string{"bastion"}, Parallel: DefaultParallel, Timeout: DefaultTimeout, RollbackAfter: DefaultRollbackAfter,
			Given: Given{User: true}, // the rest is left to defaults, or to ~/.ssh/config
		},
		Interfaces: Interfaces{Public: DefaultPublicIface, Private: "ens4"},
		Hosts: []*Host{
			{
				Name: "bastion", Role: "tunnel", PublicIP: addr("203.0.113.5"), PrivateIP: addr("198.18.0.5"),
				PublicIface: "ens3", PrivateIface: "ens4", User: "deploy", Port: 2222, Become: "sudo", Given: Given{User: true, Port: true}, Backend: IPTables,
			},
			{
				Name: "db-1", Role: "db", PrivateIP: addr("198.18.0.6"),
				PublicIface: "eth0", PrivateIface: "bond0.100", User: "root", Port: 22, Become: "none", Given: Given{User: true}, Backend: IPTables,
			},
		},
		Roles: []*Role{
			{
				Name: "db", Template: "./db.tmpl",
				Allow: []Allow{
					// A udp list alone opens UDP only, not every TCP port.
					{From: "tunnel", FromRole: "tunnel", UDP: []int{161}},
					// A bare address is a /32.
					{From: "198.51.100.7", FromCIDR: netip.MustParsePrefix("198.51.100.7/32"), TCP: []int{5432}, UDP: []int{53}},
				},
			},
			// Ports are sorted and deduplicated.
			{Name: "tunnel", Template: "tunnel", PublicTCP: []int{22, 2222}},
		},
		Sites:    []*Site{{Tunnels: []string{"bastion"}}},
		Warnings: []Problem{{Line: 24, Key: "roles.tunnel.public_tcp[2]", Msg: "port 2222 is listed twice", Warning: true}},
	}
	if diff := cmp.Diff(want, inv, cmpAddrs); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got, want := inv.TemplatePath("./db.tmpl"), filepath.Join("dir", "db.tmpl"); got != want {
		t.Errorf("TemplatePath = %q, want %q", got, want)
	}
	if got := inv.TemplatePath("/etc/fwpush/db.tmpl"); got != "/etc/fwpush/db.tmpl" {
		t.Errorf("TemplatePath of an absolute path = %q", got)
	}
	if !IsBuiltin("tunnel") || IsBuiltin("./db.tmpl") {
		t.Error("IsBuiltin does not tell built-in templates from files")
	}
	db, _ := inv.Host("db-1")
	bastion, _ := inv.Host("bastion")
	if db.HasPublic() || !bastion.HasPublic() {
		t.Errorf("HasPublic: db-1 %v, bastion %v", db.HasPublic(), bastion.HasPublic())
	}
}

// A byte order mark, which some editors write, changes nothing; line
// numbers still count from the first line.
func TestParseByteOrderMark(t *testing.T) {
	src := "\xef\xbb\xbf[ssh]\ntunnel = \"t\"\nprot = 22\n[hosts.t]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.1\"\n[roles.tunnel]\ntemplate = \"tunnel\"\n"
	_, err := Parse("bom.toml", []byte(src))
	want := `bom.toml:3: ssh.prot: unknown key "prot" in [ssh]; did you mean "port"?`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "read inventory: ") {
		t.Errorf("Load of a missing file = %v", err)
	}
}

// examples/large.toml is the fleet other packages test at size: it must
// keep loading, keep its per-host overrides and use documentation
// addresses only.
func TestLoadLarge(t *testing.T) {
	inv, err := Load(filepath.Join("..", "examples", "large.toml"))
	if err != nil {
		t.Fatal(err)
	}
	perRole := map[string]int{}
	public, private, v6 := netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8::/32")
	for _, h := range inv.Hosts {
		perRole[h.Role]++
		if h.PublicIP.IsValid() && !public.Contains(h.PublicIP) || !private.Contains(h.PrivateIP) || h.PublicIP6.IsValid() && !v6.Contains(h.PublicIP6) {
			t.Errorf("%s: %v %v %v is outside the documentation ranges", h.Name, h.PublicIP, h.PrivateIP, h.PublicIP6)
		}
	}
	want := map[string]int{"tunnel": 2, "lb": 4, "web": 12, "api": 10, "db": 6, "cache": 6}
	if diff := cmp.Diff(want, perRole); diff != "" {
		t.Errorf("hosts per role (-want +got):\n%s", diff)
	}
	db6, _ := inv.Host("db-6")
	if diff := cmp.Diff(&Host{
		Name: "db-6", Role: "db", PrivateIP: addr("198.19.4.6"),
		PublicIface: "ens3", PrivateIface: "ens4", User: "root", Port: 2222, Become: "none", Given: Given{User: true, Port: true}, Backend: IPTables,
	}, db6, cmpAddrs); diff != "" {
		t.Errorf("db-6 (-want +got):\n%s", diff)
	}
	if web12, _ := inv.Host("web-12"); web12.User != "deploy" {
		t.Errorf("web-12 user = %q, want deploy", web12.User)
	}
	api, _ := inv.Role("api")
	gossip := Allow{From: "api", FromRole: "api", TCP: []int{7946}, UDP: []int{7946}}
	if diff := cmp.Diff(gossip, api.Allow[2], cmpAddrs); diff != "" {
		t.Errorf("api allow[2] (-want +got):\n%s", diff)
	}
}

// examples/sites.toml: two sites, each with its bastions in order of
// preference, every host in one of them, and a flow between them marked.
func TestLoadSites(t *testing.T) {
	inv, err := Load(filepath.Join("..", "examples", "sites.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.SSH.Tunnel != "" || inv.SSH.Tunnels != nil || inv.Tunnel() != nil || !inv.HasSites() {
		t.Errorf("[ssh] tunnel %q %v, Tunnel() %v, HasSites %v: want no tunnel outside the sites", inv.SSH.Tunnel, inv.SSH.Tunnels, inv.Tunnel(), inv.HasSites())
	}
	want := []*Site{
		{Name: "east", Tunnels: []string{"bastion-e1", "bastion-e2"}},
		{Name: "west", Tunnels: []string{"bastion-w1"}},
	}
	if diff := cmp.Diff(want, inv.Sites); diff != "" {
		t.Errorf("Sites (-want +got):\n%s", diff)
	}
	in := map[string][]string{}
	for _, s := range inv.Sites {
		for _, h := range inv.HostsIn(s.Name) {
			in[s.Name] = append(in[s.Name], h.Name)
		}
	}
	wantIn := map[string][]string{
		"east": {"app-1", "app-2", "bastion-e1", "bastion-e2", "www-1"},
		"west": {"bastion-w1", "db-1", "db-2"},
	}
	if diff := cmp.Diff(wantIn, in); diff != "" {
		t.Errorf("hosts by site (-want +got):\n%s", diff)
	}
	var bastions []string
	for _, h := range inv.Hosts {
		if inv.IsBastion(h) {
			bastions = append(bastions, h.Name)
		}
	}
	if diff := cmp.Diff([]string{"bastion-e1", "bastion-e2", "bastion-w1"}, bastions); diff != "" {
		t.Errorf("IsBastion (-want +got):\n%s", diff)
	}
	if b := inv.Bastions("east"); len(b) != 2 || b[0].Name != "bastion-e1" || b[1].Name != "bastion-e2" {
		t.Errorf("Bastions(east) = %v, want bastion-e1, bastion-e2 in that order", b)
	}
	db, _ := inv.Role("db")
	if !db.Allow[0].CrossSiteOK || db.Allow[1].CrossSiteOK {
		t.Errorf("db's allow entries: cross_site %v, %v; want ok on the first only", db.Allow[0].CrossSiteOK, db.Allow[1].CrossSiteOK)
	}
}

// A role's hosts keep the chains of [firewall] preserve and of the role's
// own preserve, each pattern once, and every pattern names where it is
// written.
func TestPreserve(t *testing.T) {
	inv, err := Parse("p.toml", []byte(`
[ssh]
tunnel = "t"
[firewall]
preserve = ["f2b-*", "DOCKER*"]
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.k]
role = "kube"
private_ip = "198.18.0.2"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.kube]
template = "private"
preserve = ["KUBE-*", "DOCKER*", "cali-*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role string
		want []string
		keys []string
	}{
		{"tunnel", []string{"f2b-*", "DOCKER*"}, []string{"firewall.preserve[0]", "firewall.preserve[1]"}},
		{"kube", []string{"f2b-*", "DOCKER*", "KUBE-*", "cali-*"},
			[]string{"firewall.preserve[0]", "firewall.preserve[1]", "roles.kube.preserve[0]", "roles.kube.preserve[2]"}},
	} {
		got := inv.Preserve(tc.role)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Preserve(%s) (-want +got):\n%s", tc.role, diff)
		}
		var keys []string
		for i := range got {
			keys = append(keys, inv.PreserveKey(tc.role, i))
		}
		if diff := cmp.Diff(tc.keys, keys); diff != "" {
			t.Errorf("PreserveKey(%s, ...) (-want +got):\n%s", tc.role, diff)
		}
	}
}

// A host's backend is its own key's, else its role's, else [firewall]'s,
// else iptables; a snapshot keeps each where it was written.
func TestBackend(t *testing.T) {
	for _, tc := range []struct {
		name, firewall string
		want           map[string]string
	}{
		{"default", "", map[string]string{"t": IPTables, "a": NFTables, "b": IPTables, "c": NFTables, "d": IPTables}},
		{"fleet nftables", `backend = "nftables"`, map[string]string{"t": NFTables, "a": NFTables, "b": IPTables, "c": NFTables, "d": NFTables}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := `
[ssh]
tunnel = "t"
[firewall]
` + tc.firewall + `
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.a]
role = "nft"
private_ip = "198.18.0.2"
[hosts.b]
role = "nft"
private_ip = "198.18.0.3"
backend = "iptables"
[hosts.c]
role = "other"
private_ip = "198.18.0.4"
backend = "nftables"
[hosts.d]
role = "other"
private_ip = "198.18.0.5"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.nft]
template = "private"
backend = "nftables"
[roles.other]
template = "private"
`
			inv, err := Parse("b.toml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, h := range inv.Hosts {
				got[h.Name] = h.Backend
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("backends (-want +got):\n%s", diff)
			}
			snap, err := Snapshot(inv, SnapshotOptions{})
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("snap.toml", snap)
			if err != nil {
				t.Fatalf("%v\n%s", err, snap)
			}
			if diff := cmp.Diff(inv, again, cmpAddrs, cmpopts.IgnoreFields(Inventory{}, "Path", "Warnings", "DigitalOcean")); diff != "" {
				t.Errorf("snapshot loads as another inventory (-want +got):\n%s\n%s", diff, snap)
			}
		})
	}
}
