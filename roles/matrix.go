package roles

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/inventory"
)

// Controller names the machine fwpush runs on as the source of a probe:
// the operator's laptop, somewhere on the internet.
const Controller = "controller"

// Reach is what a TCP probe finds, or what the policy says it must find.
type Reach string

// The outcomes of a probe. A probe is Reachable when the connection is
// accepted or actively refused (either way the packet got through every
// firewall on the path) and Filtered when it times out or the source's own
// OUTPUT chain drops it.
const (
	Reachable Reach = "reachable"
	Filtered  Reach = "filtered"
)

// Where a probe's destination address is.
const (
	Private = "private" // the host's private IPv4 address
	Public  = "public"  // its public IPv4 address
	Public6 = "public6" // its public IPv6 address
)

// The sampling of large fleets: a flow between two roles is probed from at
// most SampleFrom hosts of the source role to at most SampleTo hosts of the
// destination role, the first ones in name order (a host never probes
// itself). The controller probes every public address.
const (
	SampleFrom = 2
	SampleTo   = 3
	// MaxClosedPorts bounds the ports probed per source and destination
	// role to show that what the destination opens to others stays closed
	// to this source: the lowest ones.
	MaxClosedPorts = 3
)

// AnyPort stands for "any other port" where an allow entry opens every TCP
// port: it is probed besides SSH.
const AnyPort = 20000

// Expectation is one probe of the check matrix and what the inventory says
// it must find. Probes are TCP only.
type Expectation struct {
	From     string // source host, or Controller
	FromRole string // its role, or Controller
	To       string // destination host
	ToRole   string
	Net      string // Private, Public or Public6: which of To's addresses Addr is
	Addr     netip.Addr
	Port     int
	Proto    string // always "tcp"
	Want     Reach
	// Why names the part of the inventory (or of the built-in policy) that
	// makes Want what it is.
	Why string
}

// Cell is a cell of the matrix: a source role against a destination role
// and port. Every probe between hosts of those roles on that port lands in
// the same cell.
type Cell struct {
	From string // source role, or Controller
	To   string // destination role
	Net  string // Private, Public or Public6
	Port int
}

// Cell returns the cell the expectation belongs to.
func (e Expectation) Cell() Cell {
	return Cell{From: e.FromRole, To: e.ToRole, Net: e.Net, Port: e.Port}
}

// Dest names the cell's column: "db:3306", or "lb public:443" when the
// probes go to public addresses.
func (c Cell) Dest() string {
	if c.Net == Private {
		return c.To + ":" + strconv.Itoa(c.Port)
	}
	return c.To + " " + c.Net + ":" + strconv.Itoa(c.Port)
}

// Matrix is every probe the inventory implies, and what no probe covers.
type Matrix struct {
	// Expectations are sorted by cell, then source and destination host.
	Expectations []Expectation
	// Notes say which allowed flows are not probed and why (UDP, CIDR
	// sources, a role alone with itself), and where a role was sampled.
	Notes []string
}

// Expect derives the check matrix from an inventory, with no hand-written
// list: what the built-in policies make of it.
//
// Reachable: every TCP allow entry whose source is a role, from hosts of
// that role to hosts of the destination role on each allowed port (an entry
// with no port list on the SSH port and on AnyPort); SSH from the tunnel to
// every other role; from the controller, every public_tcp port on every
// public address.
//
// Filtered: SSH from every non-tunnel role to every non-tunnel role that
// does not allow it on that port; each port a destination role opens to
// some source but not to this one (at most MaxClosedPorts); from the
// controller, SSH on every public address but those that list it in
// public_tcp (the tunnel), and a port open only on the private network.
//
// Between sites, a probe goes from the source host to each public address
// of the destination of a family the source has too (that is where flows
// between sites arrive); within a site, to the private address. Every
// bastion of a site probes SSH to the site's roles: any of them may carry
// a run.
//
// Large roles are sampled (SampleFrom sources, SampleTo destinations, in
// name order, in each site). UDP is not probed, nor are CIDR sources, which have no
// inventory host to probe from; Notes lists them.
func Expect(inv *inventory.Inventory) Matrix {
	return ExpectFor(inv, inv.Hosts)
}

// ExpectFor derives the part of the check matrix that concerns some hosts
// (fwpush check --limit): the probes whose source or destination is one of
// them. It is not Expect's matrix filtered: a large role is sampled with
// the given hosts first, so that each is probed from and to even when it
// is not among the first of its role by name. ExpectFor(inv, inv.Hosts)
// is Expect(inv).
func ExpectFor(inv *inventory.Inventory, hosts []*inventory.Host) Matrix {
	m := &matrix{inv: inv, flows: Flows(inv), seen: map[string]bool{}, selected: map[string]bool{}}
	for _, h := range hosts {
		m.selected[h.Name] = true
	}
	m.limited = len(m.selected) < len(inv.Hosts)
	m.flowsReachable()
	m.tunnelSSH()
	m.sshBetweenRoles()
	m.closedPorts()
	m.controller()
	m.sampled()
	if m.limited {
		m.out = slices.DeleteFunc(m.out, func(e Expectation) bool {
			return !m.selected[e.To] && (e.From == Controller || !m.selected[e.From])
		})
		m.note("limited to the probes from or to %d of %d hosts", len(m.selected), len(inv.Hosts))
	}
	slices.SortFunc(m.out, func(a, b Expectation) int {
		return cmp.Or(
			compareRole(a.FromRole, b.FromRole),
			strings.Compare(a.ToRole, b.ToRole),
			strings.Compare(a.Net, b.Net),
			cmp.Compare(a.Port, b.Port),
			strings.Compare(a.From, b.From),
			strings.Compare(a.To, b.To),
			a.Addr.Compare(b.Addr),
		)
	})
	return Matrix{Expectations: m.out, Notes: m.notes}
}

// compareRole orders the controller before every role.
func compareRole(a, b string) int {
	if a == b {
		return 0
	}
	if a == Controller {
		return -1
	}
	if b == Controller {
		return 1
	}
	return strings.Compare(a, b)
}

type matrix struct {
	inv   *inventory.Inventory
	flows []Flow
	out   []Expectation
	notes []string
	seen  map[string]bool
	// selected are the hosts the matrix is about, by name; limited is set
	// when they are not the whole fleet.
	selected map[string]bool
	limited  bool
}

// concerns reports whether a role has a host the matrix is about.
func (m *matrix) concerns(role string) bool {
	return slices.ContainsFunc(m.inv.HostsOf(role), func(h *inventory.Host) bool { return m.selected[h.Name] })
}

// hostsOf returns the hosts of a role in the order sampling takes them:
// the selected ones first, each group by name.
func (m *matrix) hostsOf(role string) []*inventory.Host {
	hosts := m.inv.HostsOf(role)
	if m.limited {
		slices.SortStableFunc(hosts, func(a, b *inventory.Host) int {
			switch {
			case m.selected[a.Name] == m.selected[b.Name]:
				return 0
			case m.selected[a.Name]:
				return -1
			}
			return 1
		})
	}
	return hosts
}

func (m *matrix) note(format string, args ...any) {
	m.notes = append(m.notes, fmt.Sprintf(format, args...))
}

// add records a probe from src (nil: the controller) to dst's address addr,
// once: the verdict comes from one place, verdict or publicVerdict, so that
// generators that meet the same probe agree on it.
func (m *matrix) add(src, dst *inventory.Host, net string, addr netip.Addr, port int) {
	from, fromRole := Controller, Controller
	if src != nil {
		from, fromRole = src.Name, src.Role
	}
	key := fmt.Sprintf("%s>%s:%d", from, addr, port)
	if m.seen[key] {
		return
	}
	m.seen[key] = true
	e := Expectation{From: from, FromRole: fromRole, To: dst.Name, ToRole: dst.Role, Net: net, Addr: addr, Port: port, Proto: "tcp"}
	if src == nil {
		e.Want, e.Why = m.publicVerdict(dst, port)
	} else {
		e.Want, e.Why = m.verdict(src, dst, port)
	}
	m.out = append(m.out, e)
}

// verdict says whether the built-in policies let src open a TCP connection
// to dst's private address on port. Only dst's INPUT decides: where a
// source's OUTPUT drops (the public template), it accepts exactly the flows
// other roles allow from it, which are the same allow entries.
func (m *matrix) verdict(src, dst *inventory.Host, port int) (Reach, string) {
	cross := src.Site != dst.Site
	if !cross && m.inv.IsBastion(src) && dst.Name != src.Name && port == dst.Port {
		if !m.inv.HasSites() {
			return Reachable, "SSH from the tunnel's private IP"
		}
		return Reachable, fmt.Sprintf("SSH from the private IP of a bastion of site %s", src.Site)
	}
	over := ""
	if cross {
		over = fmt.Sprintf(", from site %s over the internet", src.Site)
	}
	for _, f := range m.flows {
		if f.Proto == "tcp" && f.To == dst.Role && f.From == src.Role && (f.Ports == nil || slices.Contains(f.Ports, port)) {
			return Reachable, fmt.Sprintf("roles.%s.allow: from %s, %s%s", f.To, f.From, describePorts(f.Ports), over)
		}
	}
	var open []string
	for _, f := range m.flows {
		if f.Proto == "tcp" && f.To == dst.Role && (f.Ports == nil || slices.Contains(f.Ports, port)) {
			open = append(open, f.Source())
		}
	}
	if len(open) > 0 {
		return Filtered, fmt.Sprintf("roles.%s.allow opens tcp %d to %s, not to %s%s", dst.Role, port, strings.Join(slices.Compact(open), ", "), src.Role, over)
	}
	why := fmt.Sprintf("roles.%s.allow opens nothing on tcp %d to %s%s", dst.Role, port, src.Role, over)
	if port == dst.Port && !m.inv.IsBastion(dst) {
		why += "; SSH is open to the tunnel only"
		if m.inv.HasSites() {
			why = fmt.Sprintf("roles.%s.allow opens nothing on tcp %d to %s%s; SSH is open to the bastions of site %s only, on its private network", dst.Role, port, src.Role, over, dst.Site)
		}
	}
	return Filtered, why
}

// dests are where src reaches dst: its private address in src's own site;
// in another site, each public address of a family src has one of too.
func dests(src, dst *inventory.Host) []struct {
	net  string
	addr netip.Addr
} {
	type dest = struct {
		net  string
		addr netip.Addr
	}
	if src.Site == dst.Site {
		if !dst.PrivateIP.IsValid() {
			return nil
		}
		return []dest{{Private, dst.PrivateIP}}
	}
	var out []dest
	if src.PublicIP.IsValid() && dst.PublicIP.IsValid() {
		out = append(out, dest{Public, dst.PublicIP})
	}
	if src.PublicIP6.IsValid() && dst.PublicIP6.IsValid() {
		out = append(out, dest{Public6, dst.PublicIP6})
	}
	return out
}

// probe records the probes from src to dst on port: to each address of
// dst that src reaches (see dests).
func (m *matrix) probe(src, dst *inventory.Host, port int) {
	for _, d := range dests(src, dst) {
		m.add(src, dst, d.net, d.addr, port)
	}
}

// publicVerdict says whether the controller reaches port on dst's public
// addresses: only public_tcp is open there.
func (m *matrix) publicVerdict(dst *inventory.Host, port int) (Reach, string) {
	role, _ := m.inv.Role(dst.Role)
	if slices.Contains(role.PublicTCP, port) {
		return Reachable, fmt.Sprintf("roles.%s.public_tcp: %s", role.Name, joinInts(role.PublicTCP))
	}
	if port == dst.Port {
		return Filtered, fmt.Sprintf("SSH is not in roles.%s.public_tcp: it is reached through the tunnel only", role.Name)
	}
	var from []string
	for _, f := range m.flows {
		if f.Proto == "tcp" && f.To == dst.Role && f.From != "" && (f.Ports == nil || slices.Contains(f.Ports, port)) &&
			slices.ContainsFunc(m.inv.HostsOf(f.From), func(h *inventory.Host) bool { return h.Site != dst.Site }) {
			from = append(from, f.From)
		}
	}
	if len(from) > 0 {
		return Filtered, fmt.Sprintf("tcp %d is not in roles.%s.public_tcp: only %s of other sites may use it", port, role.Name, strings.Join(slices.Compact(from), ", "))
	}
	return Filtered, fmt.Sprintf("tcp %d is not in roles.%s.public_tcp: only the private network may use it", port, role.Name)
}

func describePorts(ports []int) string {
	if ports == nil {
		return "all TCP"
	}
	return "tcp " + joinInts(ports)
}

func joinInts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// sources returns the hosts of a role that probe: in each site, the first
// SampleFrom with a private address.
func (m *matrix) sources(role string) []*inventory.Host {
	var out []*inventory.Host
	n := map[string]int{}
	for _, h := range m.hostsOf(role) {
		if n[h.Site] < SampleFrom && h.PrivateIP.IsValid() {
			out = append(out, h)
			n[h.Site]++
		}
	}
	return out
}

// targets returns the hosts of a role that src probes: in each site, the
// first SampleTo that src reaches (see dests), src itself left out.
func (m *matrix) targets(role string, src *inventory.Host) []*inventory.Host {
	var out []*inventory.Host
	n := map[string]int{}
	for _, h := range m.hostsOf(role) {
		if n[h.Site] < SampleTo && h != src && len(dests(src, h)) > 0 {
			out = append(out, h)
			n[h.Site]++
		}
	}
	return out
}

func (m *matrix) nonTunnel(hosts []*inventory.Host) []*inventory.Host {
	return slices.DeleteFunc(slices.Clone(hosts), m.inv.IsBastion)
}

// flowsReachable probes every allow entry whose source is a role.
func (m *matrix) flowsReachable() {
	for _, f := range m.flows {
		what := fmt.Sprintf("roles.%s.allow from %s, %s %s", f.To, f.Source(), f.Proto, portsOrAll(f.Ports))
		note := m.note
		if !m.concerns(f.From) && !m.concerns(f.To) {
			note = func(string, ...any) {} // a flow between hosts the matrix is not about
		}
		switch {
		case f.Proto != "tcp":
			note("%s: not probed (check probes TCP only)", what)
			continue
		case f.From == "":
			note("%s: not probed (a CIDR source has no inventory host to probe from)", what)
			continue
		}
		pairs := 0
		for _, src := range m.sources(f.From) {
			for _, dst := range m.targets(f.To, src) {
				ports := f.Ports
				if ports == nil {
					ports = []int{dst.Port, AnyPort}
				}
				for _, p := range ports {
					m.probe(src, dst, p)
				}
				pairs++
			}
		}
		switch {
		case pairs == 0:
			note("%s: not probed (no pair of distinct hosts: a host never probes itself)", what)
		case f.Ports == nil:
			note("%s: probed on SSH and on port %d, standing for any port", what, AnyPort)
		}
	}
}

func portsOrAll(ports []int) string {
	if ports == nil {
		return "all"
	}
	return joinInts(ports)
}

// tunnelSSH probes SSH from every bastion to every role of its site: the
// path fwpush itself depends on, from each bastion that may carry a run.
func (m *matrix) tunnelSSH() {
	for _, site := range m.inv.Sites {
		for _, b := range m.inv.Bastions(site.Name) {
			if !b.PrivateIP.IsValid() {
				continue
			}
			for _, r := range m.inv.Roles {
				for _, dst := range m.targets(r.Name, b) {
					if dst.Site == b.Site {
						m.add(b, dst, Private, dst.PrivateIP, dst.Port)
					}
				}
			}
		}
	}
}

// sshBetweenRoles probes SSH between every pair of non-tunnel roles: it is
// filtered unless the destination role allows the source on that port.
func (m *matrix) sshBetweenRoles() {
	for _, from := range m.inv.Roles {
		for _, src := range m.nonTunnel(m.sources(from.Name)) {
			for _, to := range m.inv.Roles {
				for _, dst := range m.nonTunnel(m.targets(to.Name, src)) {
					m.probe(src, dst, dst.Port)
				}
			}
		}
	}
}

// closedPorts probes, for every source and destination role, the ports the
// destination opens to others (roles or CIDRs) but not to this source.
func (m *matrix) closedPorts() {
	open := map[string][]int{}
	for _, f := range m.flows {
		if f.Proto == "tcp" {
			open[f.To] = append(open[f.To], f.Ports...)
		}
	}
	for _, to := range m.inv.Roles {
		ports := slices.Sorted(slices.Values(open[to.Name]))
		ports = slices.Compact(ports)
		for _, from := range m.inv.Roles {
			for _, src := range m.sources(from.Name) {
				for _, dst := range m.targets(to.Name, src) {
					n := 0
					for _, p := range ports {
						if n == MaxClosedPorts {
							break
						}
						if want, _ := m.verdict(src, dst, p); want == Filtered {
							m.probe(src, dst, p)
							n++
						}
					}
				}
			}
		}
	}
}

// controller probes every public address from the machine fwpush runs on:
// public_tcp open, SSH closed (but where public_tcp lists it: the tunnel),
// and a port of the private network closed.
func (m *matrix) controller() {
	var anyPrivate []int
	for _, f := range m.flows {
		if f.Proto == "tcp" {
			anyPrivate = append(anyPrivate, f.Ports...)
		}
	}
	slices.Sort(anyPrivate)
	for _, h := range m.inv.Hosts {
		role, _ := m.inv.Role(h.Role)
		ports := slices.Clone(role.PublicTCP)
		if !slices.Contains(ports, h.Port) {
			ports = append(ports, h.Port)
		}
		if p, ok := m.privateOnly(h, role, anyPrivate); ok {
			ports = append(ports, p)
		}
		for _, a := range []struct {
			net  string
			addr netip.Addr
		}{{Public, h.PublicIP}, {Public6, h.PublicIP6}} {
			if !a.addr.IsValid() {
				continue
			}
			for _, p := range ports {
				m.add(nil, h, a.net, a.addr, p)
			}
		}
	}
}

// privateOnly picks a port that must stay closed on h's public addresses
// although the private network uses it: the lowest one h's role opens
// privately, else the lowest any role opens, else AnyPort.
func (m *matrix) privateOnly(h *inventory.Host, role *inventory.Role, anyPrivate []int) (int, bool) {
	var own []int
	for _, f := range m.flows {
		if f.Proto == "tcp" && f.To == h.Role {
			own = append(own, f.Ports...)
		}
	}
	slices.Sort(own)
	for _, p := range slices.Concat(own, anyPrivate, []int{AnyPort}) {
		if p != h.Port && !slices.Contains(role.PublicTCP, p) {
			return p, true
		}
	}
	return 0, false
}

// sampled notes the roles whose hosts were sampled.
func (m *matrix) sampled() {
	for _, r := range m.inv.Roles {
		// Sampling takes the first hosts of each site: what counts is the
		// most a role has in one.
		perSite := map[string]int{}
		n := 0
		for _, h := range m.inv.HostsOf(r.Name) {
			perSite[h.Site]++
			n = max(n, perSite[h.Site])
		}
		where := ""
		if len(perSite) > 1 {
			where = " in a site"
		}
		order := "by name"
		if m.limited {
			order = "the selected ones first, by name"
		}
		if n > SampleTo {
			m.note("role %s has %d hosts%s: probes go from its first %d and to its first %d (%s)", r.Name, n, where, SampleFrom, SampleTo, order)
		} else if n > SampleFrom {
			m.note("role %s has %d hosts%s: probes go from its first %d (%s)", r.Name, n, where, SampleFrom, order)
		}
	}
}
