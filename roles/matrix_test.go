package roles

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
)

// probe is an expectation as the tests write it.
type probe struct {
	from, to string // host names, or Controller
	addr     string
	port     int
	want     Reach
}

func find(m Matrix, from, addr string, port int) (Expectation, bool) {
	for _, e := range m.Expectations {
		if e.From == from && e.Addr.String() == addr && e.Port == port {
			return e, true
		}
	}
	return Expectation{}, false
}

func TestExpect(t *testing.T) {
	site, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		inv    *inventory.Inventory
		want   []probe
		absent []probe // no probe at all, whatever its verdict
		notes  []string
	}{
		{name: "site", inv: site, want: []probe{
			// allow entries, from role to role
			{"wordpress-1", "mysql-1", "198.18.0.31", 3306, Reachable},
			{"mysql-1", "mysql-2", "198.18.0.32", 3306, Reachable},
			{"haproxy-www", "wordpress-2", "198.18.0.22", 80, Reachable},
			{"mysql-2", "wordpress-1", "198.18.0.21", 3306, Reachable},
			// app allows all TCP from app: SSH and any other port
			{"wordpress-1", "wordpress-2", "198.18.0.22", 22, Reachable},
			{"wordpress-2", "wordpress-1", "198.18.0.21", AnyPort, Reachable},
			// SSH from the tunnel to every role
			{"tunnel-1", "mysql-1", "198.18.0.31", 22, Reachable},
			{"tunnel-1", "haproxy-www", "198.18.0.11", 22, Reachable},
			// SSH between non-tunnel roles that do not allow it
			{"wordpress-1", "mysql-1", "198.18.0.31", 22, Filtered},
			{"mysql-1", "wordpress-2", "198.18.0.22", 22, Filtered},
			{"haproxy-www", "mysql-2", "198.18.0.32", 22, Filtered},
			{"mysql-1", "haproxy-www", "198.18.0.11", 22, Filtered},
			// ports the destination opens to others only
			{"haproxy-www", "mysql-1", "198.18.0.31", 3306, Filtered},
			{"tunnel-1", "mysql-1", "198.18.0.31", 3306, Filtered},
			{"haproxy-www", "wordpress-1", "198.18.0.21", 3306, Filtered},
			{"haproxy-www", "wordpress-1", "198.18.0.21", 9100, Filtered}, // open to a CIDR only
			{"mysql-1", "wordpress-1", "198.18.0.21", 80, Filtered},
			// the controller: public_tcp, SSH only on the tunnel, no private port
			{Controller, "haproxy-www", "203.0.113.11", 80, Reachable},
			{Controller, "haproxy-www", "203.0.113.11", 443, Reachable},
			{Controller, "haproxy-www", "2001:db8::11", 443, Reachable},
			{Controller, "haproxy-www", "203.0.113.11", 22, Filtered},
			{Controller, "haproxy-www", "2001:db8::11", 22, Filtered},
			{Controller, "tunnel-1", "203.0.113.10", 22, Reachable},
			{Controller, "tunnel-1", "203.0.113.10", 80, Filtered}, // the lowest private port of the fleet
		}, absent: []probe{
			{from: "wordpress-1", addr: "198.18.0.21", port: 22},   // never itself
			{from: Controller, addr: "198.18.0.31", port: 3306},    // the controller has no private route
			{from: "wordpress-1", addr: "198.18.0.10", port: 22},   // SSH to the tunnel is on its public side
			{from: "wordpress-1", addr: "198.18.0.31", port: 9100}, // db opens no 9100 to anyone
		}, notes: []string{
			"roles.app.allow from 198.51.100.0/24, tcp 9100: not probed (a CIDR source has no inventory host to probe from)",
		}},
		{name: "fleet", inv: parse(t, fleet), want: []probe{
			{"lb", "a1", "198.18.0.3", 80, Reachable},
			{"lb", "a2", "198.18.0.4", 8080, Reachable},
			{"a1", "d", "198.18.0.5", 5432, Reachable},
			// a2's sshd listens on 2222: that is its SSH port everywhere
			{"t", "a2", "198.18.0.4", 2222, Reachable},
			{"a1", "a2", "198.18.0.4", 2222, Filtered}, // app allows app UDP only
			{"lb", "d", "198.18.0.5", 5432, Filtered},
			{"d", "a1", "198.18.0.3", 80, Filtered},
			{Controller, "lb", "203.0.113.2", 443, Reachable},
			{Controller, "lb", "203.0.113.2", 22, Filtered},
			{Controller, "lb", "203.0.113.2", 80, Filtered}, // lb opens nothing privately: the lowest private port of the fleet
			{Controller, "t", "203.0.113.1", 80, Filtered},
		}, absent: []probe{
			{from: "a1", addr: "198.18.0.4", port: 24007}, // UDP
		}, notes: []string{
			"roles.app.allow from app, udp 24007: not probed (check probes TCP only)",
			"roles.db.allow from 198.51.100.0/24, tcp all: not probed (a CIDR source has no inventory host to probe from)",
		}},
		{name: "a role alone with itself", inv: parse(t, `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.d]
role = "db"
private_ip = "198.18.0.5"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.db]
template = "private"
allow = [ { from = "db", tcp = [3306] } ]
`), want: []probe{
			{"t", "d", "198.18.0.5", 22, Reachable},
			{"t", "d", "198.18.0.5", 3306, Filtered},
			{Controller, "t", "203.0.113.1", 3306, Filtered},
		}, notes: []string{
			"roles.db.allow from db, tcp 3306: not probed (no pair of distinct hosts: a host never probes itself)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Expect(tt.inv)
			for _, w := range tt.want {
				e, ok := find(m, w.from, w.addr, w.port)
				if !ok {
					t.Errorf("no probe from %s to %s (%s:%d)", w.from, w.to, w.addr, w.port)
					continue
				}
				if e.To != w.to || e.Want != w.want {
					t.Errorf("probe from %s to %s:%d: got to %s, want %s (%s); expected to %s, %s", w.from, w.addr, w.port, e.To, e.Want, e.Why, w.to, w.want)
				}
			}
			for _, a := range tt.absent {
				if e, ok := find(m, a.from, a.addr, a.port); ok {
					t.Errorf("unexpected probe %+v", e)
				}
			}
			for _, n := range tt.notes {
				if !slices.Contains(m.Notes, n) {
					t.Errorf("notes lack %q; have:\n%s", n, strings.Join(m.Notes, "\n"))
				}
			}
		})
	}
}

// Between sites the matrix probes public addresses, from the other site's
// hosts: the flows that cross, in each family, and what must stay shut;
// and SSH from every bastion of a site.
func TestExpectSites(t *testing.T) {
	inv, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := Expect(inv)
	for _, w := range []struct {
		probe
		why string
	}{
		{probe{"app-1", "db-1", "203.0.113.31", 3306, Reachable}, "roles.db.allow: from app, tcp 3306, from site east over the internet"},
		{probe{"app-1", "db-1", "2001:db8::31", 3306, Reachable}, "roles.db.allow: from app, tcp 3306, from site east over the internet"},
		{probe{"app-2", "db-2", "203.0.113.32", 3306, Reachable}, "roles.db.allow: from app, tcp 3306, from site east over the internet"},
		{probe{"www-1", "db-1", "203.0.113.31", 3306, Filtered}, "roles.db.allow opens tcp 3306 to app, db, not to lb, from site east over the internet"},
		{probe{"app-1", "db-1", "203.0.113.31", 22, Filtered}, "roles.db.allow opens nothing on tcp 22 to app, from site east over the internet; SSH is open to the bastions of site west only, on its private network"},
		{probe{Controller, "db-1", "203.0.113.31", 3306, Filtered}, "tcp 3306 is not in roles.db.public_tcp: only app of other sites may use it"},
		{probe{"db-2", "db-1", "198.19.0.31", 3306, Reachable}, "roles.db.allow: from db, tcp 3306"},
		{probe{"bastion-e2", "app-2", "198.18.0.22", 22, Reachable}, "SSH from the private IP of a bastion of site east"},
		{probe{"bastion-e2", "bastion-e1", "198.18.0.10", 22, Reachable}, "SSH from the private IP of a bastion of site east"},
		{probe{"bastion-w1", "db-2", "198.19.0.32", 22, Reachable}, "SSH from the private IP of a bastion of site west"},
	} {
		e, ok := find(m, w.from, w.addr, w.port)
		if !ok {
			t.Errorf("no probe from %s to %s (%s:%d)", w.from, w.to, w.addr, w.port)
			continue
		}
		if e.To != w.to || e.Want != w.want || e.Why != w.why {
			t.Errorf("probe from %s to %s:%d: got to %s, %s (%s); want to %s, %s (%s)", w.from, w.addr, w.port, e.To, e.Want, e.Why, w.to, w.want, w.why)
		}
	}
	for _, a := range []probe{
		{from: "app-1", addr: "198.19.0.31", port: 3306},     // no route to another site's private network
		{from: "bastion-e1", addr: "198.19.0.31", port: 22},  // a bastion serves its own site
		{from: "app-2", addr: "2001:db8::31", port: 3306},    // app-2 has no IPv6 to come from
		{from: "bastion-w1", addr: "203.0.113.10", port: 22}, // bastions' SSH is probed from the controller
	} {
		if e, ok := find(m, a.from, a.addr, a.port); ok {
			t.Errorf("unexpected probe %+v", e)
		}
	}
	if slices.ContainsFunc(m.Notes, func(n string) bool { return strings.HasPrefix(n, "role tunnel") }) {
		t.Errorf("the tunnel role is sampled, though no site has more than 2 of its hosts: %q", m.Notes)
	}
}

func TestExpectWhy(t *testing.T) {
	m := Expect(parse(t, fleet))
	tests := []struct {
		from, addr string
		port       int
		want       string
	}{
		{"a1", "198.18.0.5", 5432, "roles.db.allow: from app, tcp 5432"},
		{"t", "198.18.0.4", 2222, "SSH from the tunnel's private IP"},
		{"lb", "198.18.0.5", 5432, "roles.db.allow opens tcp 5432 to app, 198.51.100.0/24, not to lb"},
		{"a1", "198.18.0.4", 2222, "roles.app.allow opens nothing on tcp 2222 to app; SSH is open to the tunnel only"},
		{Controller, "203.0.113.2", 443, "roles.lb.public_tcp: 443"},
		{Controller, "203.0.113.2", 22, "SSH is not in roles.lb.public_tcp: it is reached through the tunnel only"},
		{Controller, "203.0.113.2", 80, "tcp 80 is not in roles.lb.public_tcp: only the private network may use it"},
	}
	for _, tt := range tests {
		e, ok := find(m, tt.from, tt.addr, tt.port)
		if !ok {
			t.Errorf("no probe from %s to %s:%d", tt.from, tt.addr, tt.port)
			continue
		}
		if e.Why != tt.want {
			t.Errorf("why of %s -> %s:%d: got %q, want %q", tt.from, tt.addr, tt.port, e.Why, tt.want)
		}
	}
}

// large generates a fleet: a tunnel, two load balancers and roles of n
// hosts each that allow one another the way a web stack does.
func large(t *testing.T, n int) *inventory.Inventory {
	t.Helper()
	var b strings.Builder
	b.WriteString("[ssh]\ntunnel = \"tunnel-1\"\n")
	b.WriteString("[hosts.tunnel-1]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.1\"\nprivate_ip = \"198.18.0.1\"\n")
	for i := 1; i <= 2; i++ {
		fmt.Fprintf(&b, "[hosts.lb-%d]\nrole = \"lb\"\npublic_ip = \"203.0.113.%d\"\nprivate_ip = \"198.18.0.%d\"\npublic_ip6 = \"2001:db8::%d\"\n", i, 10+i, 10+i, 10+i)
	}
	for r, role := range []string{"app", "cache", "db", "queue"} {
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "[hosts.%s-%02d]\nrole = %q\nprivate_ip = \"198.18.%d.%d\"\n", role, i, role, r+1, i)
		}
	}
	b.WriteString(`
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.lb]
template = "public"
public_tcp = [80, 443]
[roles.app]
template = "private"
allow = [ { from = "lb", tcp = [8080] }, { from = "app" } ]
[roles.cache]
template = "private"
allow = [ { from = "app", tcp = [6379] } ]
[roles.db]
template = "private"
allow = [ { from = "app", tcp = [5432] }, { from = "db", tcp = [5432] }, { from = "queue", tcp = [5432, 5433] } ]
[roles.queue]
template = "private"
allow = [ { from = "app", tcp = [5672] }, { from = "198.51.100.0/24", tcp = [15672] } ]
`)
	return parse(t, b.String())
}

func TestExpectSampling(t *testing.T) {
	m := Expect(large(t, 8))
	sources := map[string]map[string]bool{}    // role -> source hosts
	targets := map[[2]string]map[string]bool{} // source role, destination role -> destination hosts
	for _, e := range m.Expectations {
		if e.From == Controller {
			continue
		}
		if sources[e.FromRole] == nil {
			sources[e.FromRole] = map[string]bool{}
		}
		sources[e.FromRole][e.From] = true
		k := [2]string{e.FromRole, e.ToRole}
		if targets[k] == nil {
			targets[k] = map[string]bool{}
		}
		targets[k][e.To] = true
	}
	for role, hosts := range sources {
		if len(hosts) > SampleFrom {
			t.Errorf("role %s probes from %d hosts, want at most %d: %v", role, len(hosts), SampleFrom, hosts)
		}
	}
	// Two sources each take the first SampleTo hosts but themselves.
	for k, hosts := range targets {
		if len(hosts) > SampleTo+1 {
			t.Errorf("%s -> %s reaches %d hosts, want at most %d: %v", k[0], k[1], len(hosts), SampleTo+1, hosts)
		}
	}
	if got := sources["db"]; !got["db-01"] || !got["db-02"] {
		t.Errorf("db probes from %v, want the first two by name", got)
	}
	if !slices.Contains(m.Notes, "role app has 8 hosts: probes go from its first 2 and to its first 3 (by name)") {
		t.Errorf("notes lack the sampling of app:\n%s", strings.Join(m.Notes, "\n"))
	}
	// The matrix stays small while the fleet grows.
	if a, b := len(m.Expectations), len(Expect(large(t, 40)).Expectations); a != b {
		t.Errorf("%d probes for 8 hosts per role, %d for 40: sampling should bound them", a, b)
	}
}

func TestExpectWellFormed(t *testing.T) {
	sites, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	for name, inv := range map[string]*inventory.Inventory{"fleet": parse(t, fleet), "large": large(t, 5), "sites": sites} {
		m := Expect(inv)
		if len(m.Expectations) == 0 {
			t.Fatalf("%s: no expectations", name)
		}
		seen := map[string]bool{}
		for _, e := range m.Expectations {
			key := fmt.Sprintf("%s>%s:%d", e.From, e.Addr, e.Port)
			if seen[key] {
				t.Errorf("%s: probe %s twice", name, key)
			}
			seen[key] = true
			if e.From == e.To {
				t.Errorf("%s: %s probes itself", name, e.From)
			}
			dst, _ := inv.Host(e.To)
			want := map[string]netip.Addr{Private: dst.PrivateIP, Public: dst.PublicIP, Public6: dst.PublicIP6}[e.Net]
			if e.Addr != want || e.Proto != "tcp" || e.Why == "" || (e.Want != Reachable && e.Want != Filtered) {
				t.Errorf("%s: malformed %+v", name, e)
			}
			// Within a site the private address; from the controller and
			// from other sites a public one.
			src, _ := inv.Host(e.From)
			if (e.From == Controller || src.Site != dst.Site) != (e.Net != Private) {
				t.Errorf("%s: %s probes %s address %s", name, e.From, e.Net, e.Addr)
			}
		}
		if diff := cmp.Diff(m, Expect(inv), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("%s: two derivations differ:\n%s", name, diff)
		}
	}
}

// TestExpectAgreesWithPolicies walks every probe's first packet through the
// rendered policies (the source's OUTPUT, the destination's INPUT): the
// matrix must say what the built-in templates really do.
func TestExpectAgreesWithPolicies(t *testing.T) {
	site, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	big, err := inventory.Load("../examples/large.toml")
	if err != nil {
		t.Fatal(err)
	}
	sites, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		for name, inv := range map[string]*inventory.Inventory{"site": site, "fleet": parse(t, fleet), "generated": large(t, 5), "examples/large.toml": big, "examples/sites.toml": sites} {
			expectAgrees(t, mode.name+", "+name, inv, mode.opts)
		}
	}
}

// expectAgrees walks the probes of inv's matrix through its policies,
// compiled with opts.
func expectAgrees(t *testing.T, name string, inv *inventory.Inventory, opts Options) {
	t.Helper()
	controller4, controller6 := netip.MustParseAddr("203.0.113.254"), netip.MustParseAddr("2001:db8::fffe")
	plan, err := CompileHosts(inv, nil, inv.Hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	parsed := map[string]*policy.Ruleset{}
	rules := func(host string, v6 bool) *policy.Ruleset {
		key := fmt.Sprint(host, v6)
		if rs, ok := parsed[key]; ok {
			return rs
		}
		p, _ := plan.Policy(host)
		doc := p.V4
		if v6 {
			doc = p.V6
		}
		rs, err := policy.Parse(string(doc))
		if err != nil {
			t.Fatal(err)
		}
		rs.WithSets(p.Sets)
		parsed[key] = rs
		return rs
	}
	for _, e := range Expect(inv).Expectations {
		dst, _ := inv.Host(e.To)
		pkt := policy.Packet{Dst: e.Addr, Proto: "tcp", SPort: 40000, DPort: e.Port, State: "NEW"}
		verdict := policy.Accept
		if e.From == Controller {
			pkt.In, pkt.Src = dst.PublicIface, controller4
			if e.Net == Public6 {
				pkt.Src = controller6
			}
		} else {
			// From another site, from the source's public address of
			// the probe's family, out and in by the public interfaces.
			src, _ := inv.Host(e.From)
			pkt.Src, pkt.Out = src.PrivateIP, src.PrivateIface
			switch e.Net {
			case Public:
				pkt.Src, pkt.Out = src.PublicIP, src.PublicIface
			case Public6:
				pkt.Src, pkt.Out = src.PublicIP6, src.PublicIface
			}
			verdict = rules(src.Name, e.Net == Public6).Evaluate("OUTPUT", pkt)
			pkt.Out, pkt.In = "", dst.PrivateIface
			if e.Net != Private {
				pkt.In = dst.PublicIface
			}
		}
		if verdict == policy.Accept {
			verdict = rules(dst.Name, e.Net == Public6).Evaluate("INPUT", pkt)
		}
		if got := map[bool]Reach{true: Reachable, false: Filtered}[verdict == policy.Accept]; got != e.Want {
			t.Errorf("%s: %s -> %s (%s:%d): the policies say %s (%s), the matrix %s (%s)", name, e.From, e.To, e.Addr, e.Port, got, verdict, e.Want, e.Why)
		}
	}
}

// TestExpectFor: the matrix of some hosts is every probe from or to them.
// Where no role is sampled (the example), that is exactly Expect's probes
// that name one of them.
func TestExpectFor(t *testing.T) {
	site, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	whole := Expect(site)
	tests := []struct {
		hosts      []string
		notes      []string // must be there
		otherNotes []string // must not: flows between hosts the matrix is not about
	}{
		{hosts: []string{"mysql-1"},
			notes:      []string{"limited to the probes from or to 1 of 6 hosts"},
			otherNotes: []string{"roles.app.allow from 198.51.100.0/24, tcp 9100: not probed (a CIDR source has no inventory host to probe from)"}},
		{hosts: []string{"wordpress-1", "tunnel-1"},
			notes: []string{
				"limited to the probes from or to 2 of 6 hosts",
				"roles.app.allow from 198.51.100.0/24, tcp 9100: not probed (a CIDR source has no inventory host to probe from)",
			}},
		{hosts: []string{"haproxy-www"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.hosts, ","), func(t *testing.T) {
			var hosts []*inventory.Host
			for _, name := range tt.hosts {
				h, _ := site.Host(name)
				hosts = append(hosts, h)
			}
			var want []Expectation
			for _, e := range whole.Expectations {
				if slices.Contains(tt.hosts, e.To) || slices.Contains(tt.hosts, e.From) {
					want = append(want, e)
				}
			}
			m := ExpectFor(site, hosts)
			if len(want) == 0 || len(want) == len(whole.Expectations) {
				t.Fatalf("%d of %d probes concern %v: a weak test", len(want), len(whole.Expectations), tt.hosts)
			}
			if diff := cmp.Diff(want, m.Expectations, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ExpectFor(%v) (-want +got):\n%s", tt.hosts, diff)
			}
			for _, n := range tt.notes {
				if !slices.Contains(m.Notes, n) {
					t.Errorf("notes lack %q; have:\n%s", n, strings.Join(m.Notes, "\n"))
				}
			}
			for _, n := range tt.otherNotes {
				if slices.Contains(m.Notes, n) {
					t.Errorf("notes have %q, about hosts the matrix is not about", n)
				}
			}
		})
	}

	if m := ExpectFor(site, nil); len(m.Expectations) != 0 {
		t.Errorf("the matrix of no host has %d probes", len(m.Expectations))
	}
	if diff := cmp.Diff(whole, ExpectFor(site, site.Hosts), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("the matrix of every host differs from Expect's:\n%s", diff)
	}
}

// TestExpectForSampled: a selected host of a sampled role is probed from
// and to, although it is not among the first of its role by name.
func TestExpectForSampled(t *testing.T) {
	inv := large(t, 8)
	h, _ := inv.Host("app-07")
	count := func(m Matrix, from, to string) int {
		n := 0
		for _, e := range m.Expectations {
			if (from == "" || e.From == from) && (to == "" || e.To == to) {
				n++
			}
		}
		return n
	}
	if n := count(Expect(inv), "app-07", "") + count(Expect(inv), "", "app-07"); n != 0 {
		t.Fatalf("the whole matrix probes from or to app-07 %d times: it should be sampled out", n)
	}
	m := ExpectFor(inv, []*inventory.Host{h})
	for _, tt := range []struct {
		from, addr string
		port       int
		want       Reach
	}{
		{"app-07", "198.18.3.1", 5432, Reachable}, // app -> db-01
		{"app-07", "198.18.2.1", 6379, Reachable}, // app -> cache-01
		{"lb-1", "198.18.1.7", 8080, Reachable},   // lb -> app-07
		{"tunnel-1", "198.18.1.7", 22, Reachable},
		{"db-01", "198.18.1.7", 22, Filtered},
		{"app-07", "198.18.1.1", AnyPort, Reachable}, // app -> app-01, every TCP port
	} {
		e, ok := find(m, tt.from, tt.addr, tt.port)
		if !ok || e.Want != tt.want {
			t.Errorf("probe %s -> %s:%d: %+v (found %v), want %s", tt.from, tt.addr, tt.port, e, ok, tt.want)
		}
	}
	for _, e := range m.Expectations {
		if e.From != "app-07" && e.To != "app-07" {
			t.Errorf("probe %s -> %s:%d does not concern app-07", e.From, e.To, e.Port)
		}
	}
	if !slices.Contains(m.Notes, "role app has 8 hosts: probes go from its first 2 and to its first 3 (the selected ones first, by name)") {
		t.Errorf("notes lack how app was sampled:\n%s", strings.Join(m.Notes, "\n"))
	}
}
