package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
)

// addrEq compares addresses for cmp, which cannot look inside netip.Addr.
var addrEq = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func loadSite(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestNameFor(t *testing.T) {
	for _, tc := range []struct{ path, want, err string }{
		{"examples/site.toml", "site", ""},
		{"/etc/fwpush/My Site.v2.toml", "my-site-v2", ""},
		{"prod_eu-west.toml", "prod-eu-west", ""},
		{"a-very-long-inventory-name-indeed.toml", "a-very-long-inventor", ""},
		{"abcdefghijklmnopqrs-x.toml", "abcdefghijklmnopqrs", ""},
		{"/x/___.toml", "", "set one with --name"},
	} {
		got, err := NameFor(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NameFor(%q) = %q, %v; want error %q", tc.path, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NameFor(%q) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
		if err := CheckName(got); err != nil {
			t.Errorf("NameFor(%q) = %q, which CheckName refuses: %v", tc.path, got, err)
		}
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"site": true, "t1a2b-3": true, "a": true,
		"": false, "Site": false, "a.b": false, "a_b": false, "-a": false, "a-": false,
		"abcdefghijklmnopqrstu": false, "a/b": false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestNew(t *testing.T) {
	l, err := New(loadSite(t), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "site" || l.Dir != "/var/lib/fwpush-lab/site" || l.Switch != "fwp-site_switch" {
		t.Errorf("name %q, dir %q, switch %q", l.Name, l.Dir, l.Switch)
	}
	want := &Node{Name: Controller, Netns: "fwp-site_controller", Public: &Link{
		Iface: "eth0", Peer: "fwp-ctl", IP: netip.MustParseAddr("203.0.113.254"), IP6: netip.MustParseAddr("2001:db8::fffe"),
	}}
	if d := cmp.Diff(want, l.Controller, addrEq); d != "" {
		t.Errorf("controller (-want +got):\n%s", d)
	}
	want = &Node{Name: Stranger, Netns: "fwp-site_stranger", Private: &Link{
		Iface: "eth0", Peer: "fwp-str", IP: netip.MustParseAddr("198.18.0.254"),
	}}
	if d := cmp.Diff(want, l.Stranger, addrEq); d != "" {
		t.Errorf("stranger (-want +got):\n%s", d)
	}
	tunnel, err := l.Host("tunnel-1")
	if err != nil {
		t.Fatal(err)
	}
	want = &Node{Name: "tunnel-1", Netns: "fwp-site.tunnel-1", Port: 22, User: "root",
		Public:  &Link{Iface: "eth0", Peer: "fwp-pub3", IP: netip.MustParseAddr("203.0.113.10")},
		Private: &Link{Iface: "eth1", Peer: "fwp-prv3", IP: netip.MustParseAddr("198.18.0.10")},
	}
	if d := cmp.Diff(want, tunnel, addrEq); d != "" {
		t.Errorf("tunnel-1 (-want +got):\n%s", d)
	}
	db, _ := l.Host("mysql-1")
	if db.Public != nil {
		t.Errorf("mysql-1 has no public address but got a public link %+v", db.Public)
	}
	if got := knownNames(tunnel); !cmp.Equal(got, []string{"203.0.113.10", "198.18.0.10"}) {
		t.Errorf("known_hosts names of tunnel-1: %q", got)
	}
	tunnel.Port = 2222
	if got := knownNames(tunnel); !cmp.Equal(got, []string{"[203.0.113.10]:2222", "[198.18.0.10]:2222"}) {
		t.Errorf("known_hosts names of tunnel-1 on port 2222: %q", got)
	}
}

func TestNewAvoidsUsedAddresses(t *testing.T) {
	inv := loadSite(t)
	h, _ := inv.Host("wordpress-1")
	h.PrivateIP = netip.MustParseAddr("198.18.0.254")
	h, _ = inv.Host("haproxy-www")
	h.PublicIP = netip.MustParseAddr("203.0.113.254")
	h.PublicIP6 = netip.MustParseAddr("2001:db8::fffe")
	l, err := New(inv, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Controller.Public.IP.String() + " " + l.Controller.Public.IP6.String() + " " + l.Stranger.Private.IP.String(); got != "203.0.113.253 2001:db8::fffd 198.18.0.253" {
		t.Errorf("controller and stranger at %s", got)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(inv *inventory.Inventory)
		want   string
	}{
		{"reserved interface", func(inv *inventory.Inventory) {
			h, _ := inv.Host("mysql-1")
			h.PrivateIface = "lo"
		}, `host mysql-1: interface "lo": the name is taken in every network namespace`},
		{"interface Linux refuses", func(inv *inventory.Inventory) {
			h, _ := inv.Host("mysql-1")
			h.PrivateIface = "a-name-far-too-long"
		}, `host mysql-1: interface "a-name-far-too-long": not a valid Linux interface name`},
		{"address used twice", func(inv *inventory.Inventory) {
			h, _ := inv.Host("mysql-2")
			h.PrivateIP = netip.MustParseAddr("198.18.0.31")
		}, `host mysql-2: address 198.18.0.31 is already on host mysql-1`},
		{"public address used as a private one", func(inv *inventory.Inventory) {
			h, _ := inv.Host("mysql-2")
			h.PrivateIP = netip.MustParseAddr("203.0.113.10")
		}, `host tunnel-1: address 203.0.113.10 is already on host mysql-2`},
		{"host named like the lab's own", func(inv *inventory.Inventory) {
			inv.Hosts[0].Name = "controller"
		}, `host controller: the name "controller" is the lab's own`},
		{"too many hosts", func(inv *inventory.Inventory) {
			for range MaxHosts {
				inv.Hosts = append(inv.Hosts, &inventory.Host{Name: "h"})
			}
		}, "a lab holds at most 1000"},
		{"bad name", nil, "invalid lab name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := loadSite(t)
			name := "ok"
			if tc.change != nil {
				tc.change(inv)
			} else {
				name = "Not_OK"
			}
			_, err := New(inv, name, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLinkConfig(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name       string
		lk         Link
		seg, other []netip.Addr
		addrs      []string
		routes     []string
	}{{
		name:  "one network",
		lk:    Link{Iface: "eth1", IP: a("198.18.0.31")},
		seg:   []netip.Addr{a("198.18.0.31"), a("198.18.0.32"), a("198.18.0.254")},
		addrs: []string{"address add 198.18.0.31/24 dev eth1"},
	}, {
		name:   "two networks",
		lk:     Link{Iface: "eth1", IP: a("198.18.0.31")},
		seg:    []netip.Addr{a("198.18.0.31"), a("198.18.1.20"), a("198.18.1.21")},
		addrs:  []string{"address add 198.18.0.31/24 dev eth1"},
		routes: []string{"route add 198.18.1.0/24 dev eth1"},
	}, {
		name:   "IPv6 without duplicate address detection",
		lk:     Link{Iface: "eth0", IP: a("203.0.113.11"), IP6: a("2001:db8::11")},
		seg:    []netip.Addr{a("203.0.113.10"), a("203.0.113.11"), a("2001:db8::11"), a("2001:db8:1::5")},
		addrs:  []string{"address add 203.0.113.11/24 dev eth0", "address add 2001:db8::11/64 dev eth0 nodad"},
		routes: []string{"route add 2001:db8:1::/64 dev eth0"},
	}, {
		name:   "a network on both segments gets host routes",
		lk:     Link{Iface: "eth0", IP: a("198.18.0.5")},
		seg:    []netip.Addr{a("198.18.0.5"), a("198.18.0.6"), a("203.0.113.1")},
		other:  []netip.Addr{a("198.18.0.7")},
		addrs:  []string{"address add 198.18.0.5/32 dev eth0"},
		routes: []string{"route add 198.18.0.6/32 dev eth0", "route add 203.0.113.0/24 dev eth0"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			addrs, routes := linkConfig(&tc.lk, tc.seg, sharedNets(tc.seg, tc.other))
			if d := cmp.Diff(tc.addrs, addrs); d != "" {
				t.Errorf("addresses (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.routes, routes); d != "" {
				t.Errorf("routes (-want +got):\n%s", d)
			}
		})
	}
}

func TestNotRoot(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	l, err := New(loadSite(t), "t-notroot", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"up":   l.Up(t.Context()),
		"down": Down(t.Context(), l.Name),
	} {
		if !errors.Is(err, ErrNotRoot) {
			t.Errorf("%s as an ordinary user: %v, want ErrNotRoot", what, err)
		}
	}
	if _, err := Open(l.Name); !errors.Is(err, ErrNotUp) {
		t.Errorf("after a refused up, Open: %v; want ErrNotUp (nothing created)", err)
	}
}

// One lab's names never match another's, even when one lab's name starts
// with the other's.
func TestPrefixesDoNotOverlap(t *testing.T) {
	theirs := []string{"fwp-site-2.web", "fwp-site-2_switch", "fwp-sites.web", "fwp-site2_controller"}
	ours := []string{"fwp-site.web", "fwp-site.site-2.x", "fwp-site_switch", "fwp-site_controller"}
	matches := func(ns string) bool {
		for _, p := range netnsPrefixes("site") {
			if strings.HasPrefix(ns, p) {
				return true
			}
		}
		return false
	}
	for _, ns := range theirs {
		if matches(ns) {
			t.Errorf("lab site claims %s", ns)
		}
	}
	for _, ns := range ours {
		if !matches(ns) {
			t.Errorf("lab site misses %s", ns)
		}
	}
	dir := "/var/lib/fwpush-lab/site"
	for cmd, want := range map[string]bool{
		"/usr/sbin/sshd -D -e -f /var/lib/fwpush-lab/site/hosts/web/sshd_config":   true,
		"/usr/sbin/sshd -D -e -f /var/lib/fwpush-lab/site-2/hosts/web/sshd_config": false,
		"less /var/lib/fwpush-lab/site/hosts/web/sshd.log":                         false,
	} {
		if got := isLabProc(proc{pid: -1, cmdline: cmd}, nil, dir); got != want {
			t.Errorf("isLabProc(%q) = %v, want %v", cmd, got, want)
		}
	}
}
