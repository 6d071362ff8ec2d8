// Package explain answers, offline, whether the compiled policies let a
// source open a port on a destination, and why: the rule that decides,
// as rendered, with the inventory entry that made it (or the chain's
// policy, and the template that set it). It walks the packet through the
// source host's OUTPUT chain and the destination's INPUT chain with the
// evaluator behind the lockout check and check's matrix (package policy),
// on the policies package roles compiled, sets and all. No I/O.
package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// Internet is the source that stands for any machine on the internet: it
// reaches the public addresses of the destination.
const Internet = "internet"

// Loopback is a path's Net when a host talks to itself.
const Loopback = "loopback"

// Query is a question: does From reach Proto/Port on To?
type Query struct {
	// From is a host, a role (each of its hosts), an address, a CIDR
	// (every address of it), or Internet. An address or CIDR is a machine
	// on the destination's private network (as the source of an allow
	// entry is), unless it is IPv6 or Public is set: then it is on the
	// internet.
	From string
	// To is a host or a role (each of its hosts).
	To    string
	Proto string // "tcp" or "udp"
	Port  int
	// Public puts an address or CIDR source on the internet.
	Public bool
}

// Answer is what the policies say of a Query.
type Answer struct {
	Query
	// Allowed is set when every path is allowed (and there is one).
	Allowed bool
	// Paths are one per source host (or address) and destination host and
	// address of the destination it reaches.
	Paths []Path
}

// Path is one packet's way from a source to an address of a destination.
type Path struct {
	From     string // a host, or the address, CIDR or Internet asked
	FromRole string // "" unless From is a host
	To       string
	ToRole   string
	// Net is which address of To the packet goes to: roles.Private,
	// roles.Public, roles.Public6, or Loopback.
	Net     string
	Addr    netip.Addr // invalid when To has no address the source reaches
	Proto   string
	Port    int
	Allowed bool
	// Hops are the chains the packet goes through, in order: the source
	// host's OUTPUT (when From is a host), then To's INPUT; they stop at
	// the first that does not accept it.
	Hops []Hop
	// Note says why there is no hop (To has no address the source
	// reaches), or, for a source network that is denied, which part of
	// it would be allowed.
	Note string
}

// Decided is the hop that decides the path: the first that does not
// accept the packet, else the last one, To's INPUT; nil without hops.
func (p *Path) Decided() *Hop {
	if len(p.Hops) == 0 {
		return nil
	}
	return &p.Hops[len(p.Hops)-1]
}

// Hop is one chain a packet goes through, and what decides there.
type Hop struct {
	Host    string
	Family  int    // 4 or 6: which of the host's policies
	Chain   string // "INPUT" or "OUTPUT"
	Verdict policy.Verdict
	// Policy is set when no rule decides and the chain's policy does.
	Policy bool
	// Rule is the deciding rule as rendered ("-A INPUT -s ... -j ACCEPT"),
	// or, when Policy is set, the chain's declaration (":INPUT DROP").
	Rule string
	// Line is Rule's line in the host's rendered IPv4 or IPv6 policy; 0
	// when unknown.
	Line int
	// Jumps are the rules that jumped to the deciding rule's chain, as
	// rendered, in order.
	Jumps []string
	// Origin is where Rule comes from.
	Origin roles.Origin
}

// Explainer answers queries on one compiled plan. It remembers the
// policies it parsed and traced.
type Explainer struct {
	plan   *roles.Plan
	inv    *inventory.Inventory
	rules  map[string]*policy.Ruleset // by host and family: "mysql-1/4"
	traces map[string]*roles.Trace
	// outside4 and outside6 stand for the internet: addresses no host,
	// no allow entry and no set of the inventory holds.
	outside4, outside6 netip.Addr
}

// New returns an Explainer of plan, which must hold the policies of every
// host the queries name.
func New(plan *roles.Plan) *Explainer {
	e := &Explainer{plan: plan, inv: plan.Inventory, rules: map[string]*policy.Ruleset{}, traces: map[string]*roles.Trace{}}
	e.outside4 = e.outside(netip.MustParseAddr("192.0.2.1"))
	e.outside6 = e.outside(netip.MustParseAddr("2001:db8:ffff::1"))
	return e
}

// outside returns the first address from a that the inventory names
// nowhere.
func (e *Explainer) outside(a netip.Addr) netip.Addr {
	named := func(a netip.Addr) bool {
		for _, h := range e.inv.Hosts {
			if h.PrivateIP == a || h.PublicIP == a || h.PublicIP6 == a {
				return true
			}
		}
		for _, r := range e.inv.Roles {
			for _, al := range r.Allow {
				if al.FromCIDR.IsValid() && al.FromCIDR.Contains(a) {
					return true
				}
			}
		}
		return false
	}
	for named(a) {
		a = a.Next()
	}
	return a
}

// ErrQuery marks a query that names nothing the inventory knows, or a
// protocol or port that is not one.
var ErrQuery = errors.New("invalid query")

// ParsePort reads "tcp/3306" (or "udp/53").
func ParsePort(s string) (proto string, port int, err error) {
	proto, p, ok := strings.Cut(s, "/")
	if !ok || proto != "tcp" && proto != "udp" {
		return "", 0, fmt.Errorf("%w: %q: write PROTO/PORT, tcp/3306 or udp/53", ErrQuery, s)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%w: %q: the port is 1 to 65535", ErrQuery, s)
	}
	return proto, port, nil
}

// source is one source of a query: a host, or an address or network.
type source struct {
	host   *inventory.Host
	net    netip.Prefix // for an address (a /32 or /128) or CIDR
	name   string
	public bool // on the internet
}

// Explain answers q.
func (e *Explainer) Explain(q Query) (*Answer, error) {
	if q.Proto != "tcp" && q.Proto != "udp" || q.Port < 1 || q.Port > 65535 {
		return nil, fmt.Errorf("%w: %s/%d: the protocol is tcp or udp, the port 1 to 65535", ErrQuery, q.Proto, q.Port)
	}
	srcs, fromRole, err := e.sources(q)
	if err != nil {
		return nil, err
	}
	dsts, toRole, err := e.hosts(q.To)
	if err != nil {
		return nil, fmt.Errorf("%w: TO %q is %v", ErrQuery, q.To, err)
	}
	a := &Answer{Query: q}
	for _, s := range srcs {
		for _, d := range dsts {
			if s.host == d && (fromRole || toRole) {
				continue // a role's host to itself: the matrix's rule too
			}
			paths, err := e.paths(s, d, q.Proto, q.Port)
			if err != nil {
				return nil, err
			}
			a.Paths = append(a.Paths, paths...)
		}
	}
	a.Allowed = len(a.Paths) > 0 && !slices.ContainsFunc(a.Paths, func(p Path) bool { return !p.Allowed })
	return a, nil
}

// sources resolves a query's From; fromRole is set when it named a role.
func (e *Explainer) sources(q Query) (srcs []source, fromRole bool, err error) {
	switch {
	case q.From == Internet:
		return []source{{name: Internet, public: true}}, false, nil
	case strings.Contains(q.From, "/"):
		p, err := netip.ParsePrefix(q.From)
		if err != nil {
			return nil, false, fmt.Errorf("%w: FROM %q: not a CIDR: %v", ErrQuery, q.From, err)
		}
		p = p.Masked()
		return []source{{net: p, name: p.String(), public: q.Public || p.Addr().Is6()}}, false, nil
	}
	if a, err := netip.ParseAddr(q.From); err == nil {
		a = a.Unmap()
		return []source{{net: netip.PrefixFrom(a, a.BitLen()), name: a.String(), public: q.Public || a.Is6()}}, false, nil
	}
	hosts, role, err := e.hosts(q.From)
	if err != nil {
		return nil, false, fmt.Errorf("%w: FROM %q is %v, nor an address, a CIDR or %s", ErrQuery, q.From, err, Internet)
	}
	for _, h := range hosts {
		srcs = append(srcs, source{host: h, name: h.Name})
	}
	return srcs, role, nil
}

// hosts resolves a host or a role name; role is set for a role.
func (e *Explainer) hosts(name string) (hosts []*inventory.Host, role bool, err error) {
	if h, ok := e.inv.Host(name); ok {
		return []*inventory.Host{h}, false, nil
	}
	if _, ok := e.inv.Role(name); ok {
		hosts = e.inv.HostsOf(name)
		if len(hosts) == 0 {
			return nil, true, fmt.Errorf("a role with no host")
		}
		return hosts, true, nil
	}
	return nil, false, errors.New("neither a host nor a role of the inventory")
}

// paths are the ways of a packet from s to d.
func (e *Explainer) paths(s source, d *inventory.Host, proto string, port int) ([]Path, error) {
	base := Path{From: s.name, To: d.Name, ToRole: d.Role, Proto: proto, Port: port}
	if s.host != nil {
		base.FromRole = s.host.Role
	}
	var out []Path
	add := func(net string, pkt policy.Packet, family int) error {
		p := base
		p.Net, p.Addr = net, pkt.Dst
		if err := e.walk(&p, s.host, d, pkt, family); err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}
	pkt := policy.Packet{Proto: proto, SPort: 40000, DPort: port, State: "NEW"}
	switch {
	case s.host == d:
		pkt.In, pkt.Out = "lo", "lo"
		pkt.Src = cmpOr(d.PrivateIP, d.PublicIP, d.PublicIP6)
		pkt.Dst = pkt.Src
		family := 4
		if pkt.Src.Is6() {
			family = 6
		}
		return out, add(Loopback, pkt, family)
	case s.host != nil:
		for _, dest := range roles.Dests(s.host, d) {
			p := pkt
			p.Dst, p.Out, p.In = dest.Addr, s.host.PrivateIface, d.PrivateIface
			p.Src = s.host.PrivateIP
			family := 4
			switch dest.Net {
			case roles.Public:
				p.Src, p.Out, p.In = s.host.PublicIP, s.host.PublicIface, d.PublicIface
			case roles.Public6:
				p.Src, p.Out, p.In, family = s.host.PublicIP6, s.host.PublicIface, d.PublicIface, 6
			}
			if err := add(dest.Net, p, family); err != nil {
				return nil, err
			}
		}
		if len(out) == 0 {
			base.Note = noAddress(s.host, d)
			out = append(out, base)
		}
		return out, nil
	case !s.public:
		if !d.PrivateIP.IsValid() {
			base.Note = fmt.Sprintf("%s has no private address", d.Name)
			return []Path{base}, nil
		}
		p := pkt
		p.SrcNet, p.Dst, p.In = s.net, d.PrivateIP, d.PrivateIface
		return out, add(roles.Private, p, 4)
	}
	// From the internet: to each public address of a family the source
	// has (both, for Internet).
	for _, a := range []struct {
		net    string
		addr   netip.Addr
		family int
	}{{roles.Public, d.PublicIP, 4}, {roles.Public6, d.PublicIP6, 6}} {
		if !a.addr.IsValid() {
			continue
		}
		p := pkt
		p.Dst, p.In = a.addr, d.PublicIface
		switch {
		case s.host == nil && s.name == Internet && a.family == 4:
			p.Src = e.outside4
		case s.host == nil && s.name == Internet:
			p.Src = e.outside6
		case s.net.Addr().Is4() != (a.family == 4):
			continue
		default:
			p.SrcNet = s.net
		}
		if err := add(a.net, p, a.family); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		base.Note = fmt.Sprintf("%s has no public address the internet reaches from %s", d.Name, s.name)
		out = append(out, base)
	}
	return out, nil
}

// noAddress says why a host reaches no address of another.
func noAddress(src, dst *inventory.Host) string {
	if src.Site == dst.Site {
		return fmt.Sprintf("%s has no private address", dst.Name)
	}
	return fmt.Sprintf("%s (site %s) and %s (site %s) share no public address family: no path between them", src.Name, src.Site, dst.Name, dst.Site)
}

func cmpOr(as ...netip.Addr) netip.Addr {
	for _, a := range as {
		if a.IsValid() {
			return a
		}
	}
	return netip.Addr{}
}

// walk takes a packet through the source host's OUTPUT (when there is a
// source host) and d's INPUT, stopping at the first that does not accept
// it.
func (e *Explainer) walk(p *Path, src, d *inventory.Host, pkt policy.Packet, family int) error {
	type step struct {
		host  *inventory.Host
		chain string
	}
	steps := []step{{d, "INPUT"}}
	if src != nil {
		steps = []step{{src, "OUTPUT"}, {d, "INPUT"}}
	}
	for _, st := range steps {
		hop, err := e.hop(st.host, family, st.chain, pkt)
		if err != nil {
			return err
		}
		p.Hops = append(p.Hops, hop)
		if hop.Verdict != policy.Accept {
			p.Note = e.partly(st.host, family, st.chain, pkt)
			return nil
		}
	}
	p.Allowed = true
	return nil
}

// lastAddr is the last address of a network.
func lastAddr(n netip.Prefix) netip.Addr {
	b := n.Masked().Addr().AsSlice()
	for i := n.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// partly says, of a packet from a network that a chain does not accept
// whole, which of the network's first and last addresses it accepts, and
// by which rule; "" when neither or for a packet from one address.
func (e *Explainer) partly(h *inventory.Host, family int, chain string, pkt policy.Packet) string {
	n := pkt.SrcNet
	if !n.IsValid() || n.IsSingleIP() {
		return ""
	}
	rs, _, err := e.policy(h, family)
	if err != nil {
		return ""
	}
	for _, a := range []netip.Addr{n.Addr(), lastAddr(n)} {
		one := pkt
		one.SrcNet, one.Src = netip.Prefix{}, a
		if d := rs.Decide(chain, one); d.Verdict == policy.Accept && d.Rule != nil {
			return fmt.Sprintf("part of %s is allowed: %s, by line %d: %s", n, a, d.Rule.Line, d.Rule.Text)
		}
	}
	return ""
}

// hop is what a host's chain decides of a packet.
func (e *Explainer) hop(h *inventory.Host, family int, chain string, pkt policy.Packet) (Hop, error) {
	rs, tr, err := e.policy(h, family)
	if err != nil {
		return Hop{}, err
	}
	d := rs.Decide(chain, pkt)
	hop := Hop{Host: h.Name, Family: family, Chain: chain, Verdict: d.Verdict}
	for _, j := range d.Jumps {
		hop.Jumps = append(hop.Jumps, j.Text)
	}
	switch {
	case d.Rule != nil:
		hop.Rule, hop.Line = d.Rule.Text, d.Rule.Line
	case d.Verdict != policy.Unknown:
		hop.Policy = true
		hop.Line, hop.Rule = declaration(tr.Policy, family, d.Chain)
		if hop.Rule == "" {
			hop.Rule = ":" + d.Chain + " " + rs.Chains[d.Chain].Policy
		}
	}
	hop.Origin = tr.Origin(family, hop.Line)
	return hop, nil
}

// declaration is the line of a policy's document that declares chain,
// and its text; 0 and "" if none.
func declaration(pol *roles.Policy, family int, chain string) (int, string) {
	doc := pol.V4
	if family == 6 {
		doc = pol.V6
	}
	for i, l := range strings.Split(string(doc), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, ":"+chain+" ") {
			return i + 1, l
		}
	}
	return 0, ""
}

// policy returns a host's parsed policy of a family, with its sets, and
// its trace.
func (e *Explainer) policy(h *inventory.Host, family int) (*policy.Ruleset, *roles.Trace, error) {
	tr, ok := e.traces[h.Name]
	if !ok {
		var err error
		if tr, err = e.plan.Trace(h.Name); err != nil {
			return nil, nil, err
		}
		e.traces[h.Name] = tr
	}
	key := h.Name + "/" + strconv.Itoa(family)
	rs, ok := e.rules[key]
	if !ok {
		doc := tr.Policy.V4
		if family == 6 {
			doc = tr.Policy.V6
		}
		var err error
		if rs, err = policy.Parse(string(doc)); err != nil {
			return nil, nil, fmt.Errorf("host %s: IPv%d policy: %w", h.Name, family, err)
		}
		rs.WithSets(tr.Policy.Sets)
		e.rules[key] = rs
	}
	return rs, tr, nil
}

// Expectation answers a probe of check's matrix: the path of a TCP packet
// from the probe's source (the controller stands for the internet) to the
// address it probes.
func (e *Explainer) Expectation(x roles.Expectation) (Path, error) {
	from := x.From
	if from == roles.Controller {
		from = Internet
	}
	a, err := e.Explain(Query{From: from, To: x.To, Proto: x.Proto, Port: x.Port})
	if err != nil {
		return Path{}, err
	}
	for _, p := range a.Paths {
		if p.Addr == x.Addr {
			return p, nil
		}
	}
	return Path{}, fmt.Errorf("%s -> %s %s:%d: no path reaches that address", x.From, x.To, x.Addr, x.Port)
}
