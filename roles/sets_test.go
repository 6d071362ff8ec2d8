package roles

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/policy"
)

var withSets = Options{Sets: true}

func TestSetName(t *testing.T) {
	long := strings.Repeat("r", 63)
	tests := []struct{ role, kind, want string }{
		{"app", private4, "fwp-app-4"},
		{"app", public6, "fwp-app-pub6"},
		{"Web.tier_2", public4, "fwp-Web.tier_2-pub4"},
		{"twenty-two-characters", public6, "fwp-twenty-two-characters-pub6"},
		{"twenty-three-characters", private4, "fwp-twenty-three-~81b5158a-4"},
		{long, public6, "fwp-rrrrrrrrrrrrr~c6661ef6-pub6"},
	}
	for _, tt := range tests {
		got := setName(tt.role, tt.kind)
		if len(got) > policy.MaxSetName || !strings.HasPrefix(got, policy.SetPrefix) {
			t.Errorf("setName(%q, %q) = %q: %d characters, or no prefix", tt.role, tt.kind, got, len(got))
		}
		if got != tt.want {
			t.Errorf("setName(%q, %q) = %q, want %q", tt.role, tt.kind, got, tt.want)
		}
	}
	// Every kind of every role name of every length fits, and two long
	// names that share their first 13 characters are told apart.
	seen := map[string]string{}
	for n := 1; n <= 63; n++ {
		for _, c := range []string{"a", "b"} {
			role := strings.Repeat("x", n-1) + c
			for _, kind := range []string{private4, public4, public6} {
				name := setName(role, kind)
				if len(name) > policy.MaxSetName {
					t.Errorf("role of %d characters: %q is too long", n, name)
				}
				if other, ok := seen[name]; ok {
					t.Errorf("roles %q and %q both name %s", other, role, name)
				}
				seen[name] = role
			}
		}
	}
	if name := sshSetName(65535); len(name) > policy.MaxSetName || strings.Count(name, "-") != 1 {
		t.Errorf("sshSetName(65535) = %q", name)
	}
}

// Two roles whose names shorten to the same set name are refused (a
// collision of 32 bits of SHA-256 cannot be made up for the test: claim is
// called as roleSet calls it).
func TestSetNameClash(t *testing.T) {
	inv := parse(t, fleet)
	c := &compiler{inv: inv}
	c.claim("fwp-a~12345678-4", "roles.app")
	c.claim("fwp-a~12345678-4", "roles.app")
	if err := c.err(); err != nil {
		t.Fatalf("one role claimed twice: %v", err)
	}
	c.claim("fwp-a~12345678-4", "roles.db")
	want := "test.toml:31: roles.db: its ipset would be named fwp-a~12345678-4, as roles.app's: rename one of the two roles"
	if err := c.err(); err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// With sets, a flow is one rule whatever the number of hosts of its role,
// matching the role's set; the policy carries the sets it names, with the
// addresses the rules of one per address would have named.
func TestRenderedSetRules(t *testing.T) {
	plan, err := CompileHosts(parse(t, fleet), nil, parse(t, fleet).Hosts, withSets)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host     string
		v4       bool
		contains []string
		absent   []string
		sets     string
	}{
		{host: "lb", v4: true, contains: []string{
			"-A INPUT -s 198.18.0.1/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A OUTPUT -o eth1 -p tcp -m set --match-set fwp-app-4 dst -m multiport --dports 80,8080 -j ACCEPT",
			"-A OUTPUT -d 198.18.0.1/32 -o eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
		}, absent: []string{"-d 198.18.0.3/32", "fwp-db-4"}, sets: "create fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.3\nadd fwp-app-4 198.18.0.4\n"},
		{host: "a1", v4: true, contains: []string{
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-lb-4 src -m multiport --dports 80,8080 -j ACCEPT",
			"-A INPUT -i eth1 -p udp -m set --match-set fwp-app-4 src -m udp --dport 24007 -j ACCEPT",
		}, absent: []string{"-s 198.18.0.4/32", "-i eth0"},
			sets: "create fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.3\nadd fwp-app-4 198.18.0.4\ncreate fwp-lb-4 hash:ip family inet\nadd fwp-lb-4 198.18.0.2\n"},
		{host: "d", v4: true, contains: []string{
			"-A INPUT -s 198.51.100.0/24 -i eth1 -p tcp -j ACCEPT",
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 5432 -j ACCEPT",
		}, sets: "create fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.3\nadd fwp-app-4 198.18.0.4\n"},
		// The bastion hears the replies of every SSH server of its site:
		// one set and rule per port.
		{host: "t", v4: true, contains: []string{
			"-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-sshd22 src -m tcp --sport 22 -j ACCEPT",
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-sshd2222 src -m tcp --sport 2222 -j ACCEPT",
		}, absent: []string{"-s 198.18.0.3/32"},
			sets: "create fwp-sshd22 hash:ip family inet\nadd fwp-sshd22 198.18.0.1\nadd fwp-sshd22 198.18.0.2\nadd fwp-sshd22 198.18.0.3\nadd fwp-sshd22 198.18.0.5\n" +
				"create fwp-sshd2222 hash:ip family inet\nadd fwp-sshd2222 198.18.0.4\n"},
		{host: "t", contains: []string{"-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"}, absent: []string{"--dport", "match-set"}},
	}
	for _, tt := range tests {
		p, ok := plan.Policy(tt.host)
		if !ok {
			t.Fatalf("no policy for %s", tt.host)
		}
		doc := p.V6
		if tt.v4 {
			doc = p.V4
		}
		got := rules(doc)
		for _, want := range tt.contains {
			if !slices.Contains(got, want) {
				t.Errorf("%s IPv%d lacks %q; has:\n%s", tt.host, map[bool]int{true: 4, false: 6}[tt.v4], want, strings.Join(got, "\n"))
			}
		}
		for _, bad := range tt.absent {
			if strings.Contains(string(doc), bad) {
				t.Errorf("%s IPv%d has %q:\n%s", tt.host, map[bool]int{true: 4, false: 6}[tt.v4], bad, doc)
			}
		}
		if tt.sets != "" {
			if diff := cmp.Diff(tt.sets, policy.CanonicalSets(p.Sets)); diff != "" {
				t.Errorf("%s's sets (-want +got):\n%s", tt.host, diff)
			}
		}
	}
	// Hosts of a site that name a role's set share it.
	a1, _ := plan.Policy("a1")
	d, _ := plan.Policy("d")
	if a1.Sets[0] != d.Sets[0] {
		t.Error("a1 and d each have a set fwp-app-4 of their own")
	}
	if got := len(plan.Sets()); got != 4 {
		t.Errorf("the plan has %d distinct sets, want 4 (fwp-app-4, fwp-lb-4, fwp-sshd22, fwp-sshd2222)", got)
	}
}

// With sets, the sites' views differ: a role's private set holds its hosts
// in the site of the host that uses it, its public sets those of the other
// sites, IPv6 only where some of them have an IPv6 address.
func TestRenderedSetSites(t *testing.T) {
	plan := compileWith(t, "../examples/sites.toml", withSets)
	want := map[string]string{
		"db-1": "create fwp-app-pub4 hash:ip family inet\nadd fwp-app-pub4 203.0.113.21\nadd fwp-app-pub4 203.0.113.22\n" +
			"create fwp-app-pub6 hash:ip family inet6\nadd fwp-app-pub6 2001:db8::21\n" +
			"create fwp-db-4 hash:ip family inet\nadd fwp-db-4 198.19.0.31\nadd fwp-db-4 198.19.0.32\n",
		// no public_ip6 on db-2: no IPv6 rule, no IPv6 set
		"db-2": "create fwp-app-pub4 hash:ip family inet\nadd fwp-app-pub4 203.0.113.21\nadd fwp-app-pub4 203.0.113.22\n" +
			"create fwp-db-4 hash:ip family inet\nadd fwp-db-4 198.19.0.31\nadd fwp-db-4 198.19.0.32\n",
		"bastion-w1": "create fwp-sshd22 hash:ip family inet\nadd fwp-sshd22 198.19.0.10\nadd fwp-sshd22 198.19.0.31\nadd fwp-sshd22 198.19.0.32\n",
	}
	for host, sets := range want {
		p, _ := plan.Policy(host)
		if diff := cmp.Diff(sets, policy.CanonicalSets(p.Sets)); diff != "" {
			t.Errorf("%s's sets (-want +got):\n%s", host, diff)
		}
	}
	db2, _ := plan.Policy("db-2")
	if strings.Contains(string(db2.V6), "match-set") {
		t.Errorf("db-2 has no IPv6 address, yet its IPv6 policy matches a set:\n%s", db2.V6)
	}
	bw, _ := plan.Policy("bastion-w1")
	be, _ := plan.Policy("bastion-e1")
	if bw.Sets[0] == be.Sets[0] || bw.Sets[0].Name != be.Sets[0].Name {
		t.Error("the bastions of two sites share their site's set of SSH servers")
	}
}

// fleetOf is lab's fleet of n hosts: a tunnel, a load balancer, then two
// app servers to one db server. Each size is parsed once.
func fleetOf(t testing.TB, n int) *inventory.Inventory {
	t.Helper()
	fleets.Lock()
	defer fleets.Unlock()
	if inv, ok := fleets.m[n]; ok {
		return inv
	}
	inv, err := inventory.Parse("fleet.toml", lab.FleetTOML(n))
	if err != nil {
		t.Fatal(err)
	}
	fleets.m[n] = inv
	return inv
}

var fleets = struct {
	sync.Mutex
	m map[int]*inventory.Inventory
}{m: map[int]*inventory.Inventory{}}

// compileHost compiles one host of inv.
func compileHost(t testing.TB, inv *inventory.Inventory, name string, opts Options) *Policy {
	t.Helper()
	h, ok := inv.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	plan, err := CompileHosts(inv, nil, []*inventory.Host{h}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Policies) != 1 {
		t.Fatalf("%d policies for one host", len(plan.Policies))
	}
	return plan.Policies[0]
}

// The target: the rules of an app server's IPv4 filter table are
// the same at 50 hosts and at 5,000; only its sets grow. One rule per
// address grows with the fleet (which shows the test can fail).
func TestRulesDoNotGrowWithTheFleet(t *testing.T) {
	small, big := fleetOf(t, 50), fleetOf(t, 5000)
	for _, host := range []string{"app-1", "db-3", "lb-1", "tunnel-1"} {
		a, b := compileHost(t, small, host, withSets), compileHost(t, big, host, withSets)
		if diff := cmp.Diff(rules(a.V4), rules(b.V4)); diff != "" {
			t.Errorf("%s: the IPv4 rules at 50 and 5,000 hosts differ (-50 +5,000):\n%s", host, diff)
		}
		if !bytes.Equal(a.V6, b.V6) {
			t.Errorf("%s: the IPv6 policy at 50 and 5,000 hosts differs", host)
		}
		if members(a) >= members(b) {
			t.Errorf("%s: %d set members at 50 hosts, %d at 5,000", host, members(a), members(b))
		}
	}
	app := compileHost(t, big, "app-1", withSets)
	if n := len(rules(app.V4)); n != 9 {
		t.Errorf("app-1 has %d IPv4 rules, want 9 (7 of the template, and one per flow: from lb, from app)", n)
	}
	if a, b := compileHost(t, small, "app-1", Options{}), compileHost(t, fleetOf(t, 200), "app-1", Options{}); len(rules(a.V4)) >= len(rules(b.V4)) {
		t.Errorf("one rule per address: %d rules at 50 hosts, %d at 200", len(rules(a.V4)), len(rules(b.V4)))
	}
}

func members(p *Policy) int {
	n := 0
	for _, s := range p.Sets {
		n += len(s.Members)
	}
	return n
}

// One host's compile costs one host: its rendered rules are a few
// kilobytes whatever the fleet, its sets' document grows by one line per
// member, and what it allocates is bounded by a constant plus a little per
// host of the inventory (the index of the hosts by role, the members of
// its sets). docs/sets.md quotes these budgets.
func TestCompileHostBudget(t *testing.T) {
	const (
		rulesBudget   = 4 << 10 // bytes of V4 and V6 together, any fleet
		perMember     = 32      // bytes of the ipset document per member ("add fwp-sshd22 198.18.49.219\n")
		perSet        = 64      // and per set (its create line)
		fixedAllocs   = 1 << 20 // bytes allocated whatever the fleet (the templates, parsed)
		perHostAllocs = 256     // and per host of the inventory
	)
	for _, n := range []int{50, 5000} {
		inv := fleetOf(t, n)
		for _, host := range []string{"app-1", "db-3", "tunnel-1"} {
			p := compileHost(t, inv, host, withSets)
			if size := len(p.V4) + len(p.V6); size > rulesBudget {
				t.Errorf("%d hosts: %s's rules are %d bytes, over %d", n, host, size, rulesBudget)
			}
			if size, budget := len(p.IPSets()), perMember*members(p)+perSet*len(p.Sets); size > budget {
				t.Errorf("%d hosts: %s's sets are %d bytes, over %d", n, host, size, budget)
			}
			bytes := allocated(func() { compileHost(t, inv, host, withSets) })
			if budget := uint64(fixedAllocs + perHostAllocs*n); bytes > budget {
				t.Errorf("%d hosts: compiling %s allocates %d bytes, over %d", n, host, bytes, budget)
			}
		}
	}
}

// allocated is the number of bytes f allocates, the least of three runs.
func allocated(f func()) uint64 {
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// Compiling the fleet with sets is linear in its size: the allocations
// per host at 2,000 hosts are those at 200, give or take (one rule per
// address makes them ten times as many). Allocations are counted, in one
// compile of each fleet, once a compile of a small fleet has made what is
// made once (testing.AllocsPerRun would compile each fleet twice).
func TestCompileIsLinear(t *testing.T) {
	perHost := func(n int, opts Options) float64 {
		inv := fleetOf(t, n)
		return float64(mallocs(func() {
			if _, err := CompileHosts(inv, nil, inv.Hosts, opts); err != nil {
				t.Fatal(err)
			}
		})) / float64(n)
	}
	for _, opts := range []Options{withSets, {}} {
		perHost(2, opts)
	}
	small, big := perHost(200, withSets), perHost(2000, withSets)
	if big > 1.5*small {
		t.Errorf("with sets, compiling allocates %.0f times per host at 200 hosts and %.0f at 2,000", small, big)
	}
	if a, b := perHost(20, Options{}), perHost(100, Options{}); b < 2*a {
		t.Errorf("one rule per address: %.0f allocations per host at 20 hosts and %.0f at 100: this test could not tell quadratic from linear", a, b)
	}
}

// mallocs is the number of allocations f makes, counted as
// testing.AllocsPerRun counts them (with GOMAXPROCS 1, so that the
// runtime's own goroutines add little), in one run.
func mallocs(f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// CompileHosts of some hosts gives each the policy Compile gives it, and
// compiles no other.
func TestCompileHosts(t *testing.T) {
	for _, mode := range modes {
		for _, path := range []string{"../examples/large.toml", "../examples/sites.toml"} {
			whole := compileWith(t, path, mode.opts)
			inv := whole.Inventory
			for _, h := range []*inventory.Host{inv.Hosts[0], inv.Hosts[len(inv.Hosts)/2], inv.Hosts[len(inv.Hosts)-1]} {
				plan, err := CompileHosts(inv, os.ReadFile, []*inventory.Host{h}, mode.opts)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := whole.Policy(h.Name)
				got, ok := plan.Policy(h.Name)
				if !ok || len(plan.Policies) != 1 {
					t.Fatalf("%s: %d policies for %s", path, len(plan.Policies), h.Name)
				}
				if !bytes.Equal(got.V4, want.V4) || !bytes.Equal(got.V6, want.V6) || !bytes.Equal(got.IPSets(), want.IPSets()) {
					t.Errorf("%s, %s: %s compiled alone differs", mode.name, path, h.Name)
				}
			}
		}
	}
}

// A template that matches a set fwpush does not make for the host, or a
// set of the other family, is refused at the line that does; one written
// for addresses only (-s {{.Peer}}) is refused with sets, at its line.
func TestSetErrors(t *testing.T) {
	files := map[string]string{
		"other.tmpl": "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"{{template \"fwpush.input\" .}}\n-A INPUT -m set --match-set f2b-sshd src -j DROP\nCOMMIT\n",
		"family.tmpl": "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"{{template \"fwpush.input\" .}}\n{{if eq .Family 6}}-A INPUT -m set --match-set fwp-app-4 src -j ACCEPT{{end}}\nCOMMIT\n",
		"peer.tmpl": "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A INPUT -s {{.Tunnel.PrivateIP}}/32 -i {{.Interfaces.Private}} -p tcp -m tcp --dport {{.SSHPort}} -j ACCEPT\n" +
			"{{range .Ingress}}-A INPUT -s {{.Peer}} -i {{$.Interfaces.Private}} {{.Match}} -j ACCEPT\n{{end}}COMMIT\n",
	}
	read := func(path string) ([]byte, error) {
		if s, ok := files[filepath.Base(path)]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
	}
	tests := []struct {
		tmpl string
		want []string
	}{
		{"other.tmpl", []string{
			"test.toml:32: roles.db.template: tpl/other.tmpl:6: fwpush refuses the IPv4 policy of host d: set f2b-sshd is not one fwpush makes for this host: a rule that matches another program's set belongs in a preserved chain (d, line 15: -A INPUT -m set --match-set f2b-sshd src -j DROP)",
			"test.toml:32: roles.db.template: tpl/other.tmpl:6: fwpush refuses the IPv6 policy of host d: set f2b-sshd is not one fwpush makes for this host: a rule that matches another program's set belongs in a preserved chain (d, line 16: -A INPUT -m set --match-set f2b-sshd src -j DROP)",
		}},
		{"family.tmpl", []string{
			"test.toml:32: roles.db.template: tpl/family.tmpl:6: fwpush refuses the IPv6 policy of host d: set fwp-app-4 is of family inet (d, line 16: -A INPUT -m set --match-set fwp-app-4 src -j ACCEPT)",
		}},
		{"peer.tmpl", []string{
			`test.toml:32: roles.db.template: tpl/peer.tmpl:6: fwpush refuses the IPv4 policy of host d: bad address "-i" (d, line 7: -A INPUT -s  -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 5432 -j ACCEPT)`,
		}},
	}
	for _, tt := range tests {
		src := strings.Replace(fleet, "[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"tpl/"+tt.tmpl+"\"", 1)
		inv := parse(t, src)
		_, err := CompileHosts(inv, read, inv.Hosts, withSets)
		var ierr *inventory.Error
		if !errors.As(err, &ierr) {
			t.Fatalf("%s: got %v, want an *inventory.Error", tt.tmpl, err)
		}
		if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
			t.Errorf("%s: problems (-want +got):\n%s", tt.tmpl, diff)
		}
	}
	// The family mistake is not one without sets: fwp-app-4 is then
	// not made at all.
	src := strings.Replace(fleet, "[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"tpl/family.tmpl\"", 1)
	inv := parse(t, src)
	if _, err := CompileHosts(inv, read, inv.Hosts, Options{}); err == nil || !strings.Contains(err.Error(), "set fwp-app-4 is not one fwpush makes for this host") {
		t.Errorf("without sets: %v", err)
	}
}

// The lockout check walks set matches: a policy whose SSH from the tunnel
// goes through a set the tunnel is not in locks fwpush out.
func TestLockoutWithSets(t *testing.T) {
	inv := parse(t, fleet)
	plan, err := CompileHosts(inv, nil, inv.Hosts, withSets)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Policies {
		if errs := Lockout(inv, p.Host, p); len(errs) > 0 {
			t.Errorf("built-in policy of %s: %v", p.Host.Name, errs)
		}
	}
	p, _ := plan.Policy("a1")
	viaSet := *p
	viaSet.V4 = []byte(strings.Replace(string(p.V4), "-A INPUT -s 198.18.0.1/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT\n",
		"-A INPUT -i eth1 -p tcp -m set --match-set fwp-lb-4 src -m tcp --dport 22 -j ACCEPT\n", 1))
	if errs := Lockout(inv, p.Host, &viaSet); len(errs) != 1 || !errors.Is(errs[0], ErrLockout) {
		t.Errorf("SSH through a set without the tunnel: Lockout = %v, want one ErrLockout", errs)
	}
	withTunnel := viaSet
	withTunnel.Sets = nil
	for _, s := range p.Sets {
		if s.Name == "fwp-lb-4" {
			s = policy.NewSet(s.Name, s.Family, append(slices.Clone(s.Members), netip.MustParsePrefix("198.18.0.1/32")))
		}
		withTunnel.Sets = append(withTunnel.Sets, s)
	}
	if errs := Lockout(inv, p.Host, &withTunnel); len(errs) > 0 {
		t.Errorf("SSH through a set holding the tunnel: %v", errs)
	}
}
