// Package roles turns an inventory into what each host must allow: the
// flows between roles (including the egress a public host needs, derived
// from the ingress of the roles it talks to), the data each template
// receives, and the rendered, lockout-checked policy of every host. It does
// no I/O of its own: user templates are read through a function the caller
// passes in.
package roles

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/templates"
)

// Flow is traffic one role's allow entry accepts: from the private
// addresses of the hosts of role From (or from FromCIDR) to the hosts of
// role To.
type Flow struct {
	From     string       // source role; "" when the source is a CIDR
	FromCIDR netip.Prefix // set when From is ""
	To       string
	Proto    string // "tcp" or "udp"
	// Ports are the destination ports; nil means every port of Proto.
	Ports []int
	// Entry is the allow entry of role To that the flow comes from: its
	// index, as in "roles.app.allow[1]" (see Key).
	Entry int
}

// Key is the inventory key of the allow entry the flow comes from:
// "roles.app.allow[1]".
func (f Flow) Key() string { return fmt.Sprintf("roles.%s.allow[%d]", f.To, f.Entry) }

// Source names the flow's source: a role name or a CIDR.
func (f Flow) Source() string {
	if f.From != "" {
		return f.From
	}
	return f.FromCIDR.String()
}

// Flows lists every allowed flow of an inventory, by destination role and
// then in the order the allow entries are written.
func Flows(inv *inventory.Inventory) []Flow {
	var out []Flow
	for _, r := range inv.Roles {
		for i, a := range r.Allow {
			base := Flow{From: a.FromRole, FromCIDR: a.FromCIDR, To: r.Name, Entry: i}
			if a.AllTCP {
				f := base
				f.Proto = "tcp"
				out = append(out, f)
			}
			for _, p := range []struct {
				proto string
				ports []int
			}{{"tcp", a.TCP}, {"udp", a.UDP}} {
				if len(p.ports) == 0 {
					continue
				}
				f := base
				f.Proto, f.Ports = p.proto, p.ports
				out = append(out, f)
			}
		}
	}
	return out
}

// Policy is one host's rendered policy: iptables-restore input for the
// filter table, for IPv4 and IPv6, and the ipsets its rules match. On a
// host of the nftables backend these are the policy's intermediate form,
// which NFT translates.
type Policy struct {
	Host *inventory.Host
	V4   []byte
	V6   []byte
	// Sets are the sets V4 and V6 match against, sorted by name; none
	// without Options.Sets, on a host of the iptables backend. They are
	// shared with the other policies that name them: read them, never
	// change them.
	Sets []*policy.Set
	// NFT is the policy as the table the nftables backend loads, for a
	// host of that backend (Host.Backend); nil otherwise.
	NFT *nft.Ruleset
}

// NFTDocument renders NFT as nft -f loads it, with a comment that says
// whose it is; a zero Document for a host of the iptables backend.
func (p *Policy) NFTDocument() nft.Document {
	if p.NFT == nil {
		return nft.Document{}
	}
	return p.NFT.Document(fmt.Sprintf("fwpush policy for %s (role %s): table %s, IPv4 and IPv6. Generated: edit the inventory, not this file.", p.Host.Name, p.Host.Role, nft.Table))
}

// IPSets renders the policy's sets as an ipset restore document, to be
// loaded before V4 and V6; nil when it has none.
func (p *Policy) IPSets() []byte { return policy.RestoreSets(p.Sets) }

// Plan is a compiled inventory: the policies of the hosts compiled (every
// host, for Compile), sorted by host name.
type Plan struct {
	Inventory *inventory.Inventory
	Policies  []*Policy
	Options   Options

	templates map[string]*parsed // by role template, as written
}

// Policy returns the policy of the named host.
func (p *Plan) Policy(host string) (*Policy, bool) {
	i, ok := slices.BinarySearchFunc(p.Policies, host, func(pol *Policy, h string) int { return strings.Compare(pol.Host.Name, h) })
	if !ok {
		return nil, false
	}
	return p.Policies[i], true
}

// Sets lists every set of the plan's policies once, in the order the
// policies name them. Two of them may share a name: a role's set as the
// hosts of two sites see it.
func (p *Plan) Sets() []*policy.Set {
	seen := map[*policy.Set]bool{}
	var out []*policy.Set
	for _, pol := range p.Policies {
		for _, s := range pol.Sets {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// Data is what host h's template receives for one address family, with
// one rule per address: what Compile gives it without Options.Sets.
func Data(inv *inventory.Inventory, flows []Flow, h *inventory.Host, family int) templates.Data {
	c := &compiler{inv: inv, flows: flows}
	return c.data(h, family, &hostSets{})
}

// data is what host h's template receives for one address family; the
// sets it names are added to hs.
func (c *compiler) data(h *inventory.Host, family int, hs *hostSets) templates.Data {
	role, _ := c.inv.Role(h.Role)
	bastions := c.inv.Bastions(h.Site)
	d := templates.Data{
		Family:   family,
		Host:     templates.Host{Name: h.Name, Role: h.Role, PublicIP: addr(h.PublicIP), PrivateIP: addr(h.PrivateIP), PublicIP6: addr(h.PublicIP6)},
		Role:     templates.Role{Name: role.Name, Template: role.Template, PublicTCP: role.PublicTCP, LogDropped: role.LogDropped},
		SSHPort:  h.Port,
		IsTunnel: c.inv.IsBastion(h),
		Interfaces: templates.Interfaces{
			Public: h.PublicIface, Private: h.PrivateIface, HasPublic: h.HasPublic(),
		},
		Bastions:      []templates.Tunnel{},
		Ingress:       []templates.Rule{},
		CrossSite:     []templates.Rule{},
		Egress:        []templates.Rule{},
		TunnelReplies: []templates.Rule{},
		PublicTCP:     []templates.Rule{},
	}
	for i, b := range bastions {
		t := templates.Tunnel{Name: b.Name, PublicIP: addr(b.PublicIP), PrivateIP: addr(b.PrivateIP), SSHPort: b.Port}
		if i == 0 {
			d.Tunnel = t
		}
		if b != h && b.PrivateIP.IsValid() {
			d.Bastions = append(d.Bastions, t)
		}
	}
	if len(role.PublicTCP) > 0 {
		d.PublicTCP = templates.PortRules("", "", "tcp", role.PublicTCP)
	}
	c.trace.publicTCP(role.Name, d.PublicTCP)
	for _, f := range c.flows {
		if f.To == h.Role && f.From != "" {
			rules := c.crossSite(f, h, family, hs)
			d.CrossSite = append(d.CrossSite, rules...)
			c.trace.flow(traceCrossSite, f, rules)
		}
	}
	if family != 4 {
		return d // the private network is IPv4
	}
	for _, f := range c.flows {
		if f.To == h.Role {
			rules := c.ingress(f, h, hs)
			d.Ingress = append(d.Ingress, rules...)
			c.trace.flow(traceIngress, f, rules)
		}
		if f.From == h.Role {
			rules := c.egress(f, h, hs)
			d.Egress = append(d.Egress, rules...)
			c.trace.flow(traceEgress, f, rules)
		}
	}
	if d.IsTunnel {
		d.TunnelReplies = c.tunnelReplies(h, hs)
		c.trace.tunnelReplies(c.inv, h.Site, d.TunnelReplies)
	}
	return d
}

// tunnelReplies are the SSH servers of h's site that h, a bastion,
// reaches: one rule per host, or with sets, one per SSH port.
func (c *compiler) tunnelReplies(h *inventory.Host, hs *hostSets) []templates.Rule {
	var out []templates.Rule
	if c.withSets(h) {
		var ports []int
		for _, o := range c.hostsInSite(h.Site) {
			if o.Name != h.Name && o.PrivateIP.IsValid() && !slices.Contains(ports, o.Port) {
				ports = append(ports, o.Port)
			}
		}
		slices.Sort(ports)
		for _, port := range ports {
			s := c.sshSet(h.Site, port)
			hs.add(s)
			out = append(out, templates.Rule{
				Set: s.Name, PeerName: "sshd", Proto: "tcp", Ports: []int{port},
				Match: fmt.Sprintf("-p tcp -m set --match-set %s src -m tcp --sport %d", s.Name, port),
			})
		}
		return out
	}
	for _, o := range c.hostsInSite(h.Site) {
		if o.Name == h.Name || !o.PrivateIP.IsValid() {
			continue
		}
		out = append(out, templates.Rule{
			Peer: o.PrivateIP.String() + "/32", PeerName: o.Name, Proto: "tcp", Ports: []int{o.Port},
			Match: fmt.Sprintf("-p tcp -m tcp --sport %d", o.Port),
		})
	}
	return out
}

// ingress is what h accepts on its private interface of flow f: from the
// hosts of f's source role in h's own site, or from f's CIDR.
func (c *compiler) ingress(f Flow, h *inventory.Host, hs *hostSets) []templates.Rule {
	if f.From == "" {
		return templates.PortRules(f.FromCIDR.String(), f.FromCIDR.String(), f.Proto, f.Ports)
	}
	if c.withSets(h) {
		// h itself may be in the set: a packet from its own address
		// never comes in on an interface (the kernel drops it as a
		// martian), and the set is then the same on every host of the
		// site.
		return hs.use(c.roleSet(f.From, h.Site, private4), "src", f.From, f.Proto, f.Ports)
	}
	var out []templates.Rule
	for _, src := range c.hostsOf(f.From) {
		if src.Name == h.Name || src.Site != h.Site || !src.PrivateIP.IsValid() {
			continue // traffic to itself never leaves lo; other sites come in on the public side
		}
		out = append(out, templates.PortRules(src.PrivateIP.String()+"/32", src.Name, f.Proto, f.Ports)...)
	}
	return out
}

// crossSite is what h accepts on its public interface of flow f: from the
// public addresses of the hosts of f's source role in other sites, in the
// family being rendered, where h has an address of that family.
func (c *compiler) crossSite(f Flow, h *inventory.Host, family int, hs *hostSets) []templates.Rule {
	if family == 4 && !h.PublicIP.IsValid() || family == 6 && !h.PublicIP6.IsValid() {
		return nil
	}
	if c.withSets(h) {
		kind := public4
		if family == 6 {
			kind = public6
		}
		return hs.use(c.roleSet(f.From, h.Site, kind), "src", f.From, f.Proto, f.Ports)
	}
	var out []templates.Rule
	for _, src := range c.hostsOf(f.From) {
		if src.Site == h.Site {
			continue
		}
		ip := src.PublicIP
		if family == 6 {
			ip = src.PublicIP6
		}
		if ip.IsValid() {
			out = append(out, templates.PortRules(netip.PrefixFrom(ip, ip.BitLen()).String(), src.Name, f.Proto, f.Ports)...)
		}
	}
	return out
}

// egress is the private traffic of flow f that h opens: to the hosts of
// f's destination role in h's own site (to other sites it leaves by the
// public interface, which the built-in templates open for traffic the host
// starts).
func (c *compiler) egress(f Flow, h *inventory.Host, hs *hostSets) []templates.Rule {
	if c.withSets(h) {
		return hs.use(c.roleSet(f.To, h.Site, private4), "dst", f.To, f.Proto, f.Ports)
	}
	var out []templates.Rule
	for _, dst := range c.hostsOf(f.To) {
		if dst.Name == h.Name || dst.Site != h.Site || !dst.PrivateIP.IsValid() {
			continue
		}
		out = append(out, templates.PortRules(dst.PrivateIP.String()+"/32", dst.Name, f.Proto, f.Ports)...)
	}
	return out
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ErrLockout marks a policy that would cut fwpush off a host.
var ErrLockout = errors.New("lockout")

// Lockout proves, offline, that a host's rendered IPv4 policy keeps the SSH
// paths fwpush depends on: a bastion is reached from anywhere on its
// public interface and reaches every other host of its site on the private
// one; every host of a site accepts SSH from each of the site's bastions on
// its private interface (a standby bastion too: any of them may carry a
// run); and where OUTPUT drops, the replies get out. The packets are
// evaluated as conntrack-unknown (state NEW), because the session that
// loads a policy may predate connection tracking. It returns one error per
// broken path, each wrapping ErrLockout.
func Lockout(inv *inventory.Inventory, h *inventory.Host, pol *Policy) []error {
	rs, err := policy.Parse(string(pol.V4))
	if err != nil {
		return []error{fmt.Errorf("IPv4 policy does not load: %w", err)}
	}
	if _, err := policy.Parse(string(pol.V6)); err != nil {
		return []error{fmt.Errorf("IPv6 policy does not load: %w", err)}
	}
	return lockout(inv, h, rs.WithSets(pol.Sets))
}

// lockout is Lockout of a parsed IPv4 policy, given its sets.
func lockout(inv *inventory.Inventory, h *inventory.Host, rs *policy.Ruleset) []error {
	var errs []error
	// what is only written for a path that is not accepted: a bastion
	// checks two paths per host of its site.
	check := func(chain string, p policy.Packet, what func() string) {
		if v := rs.Evaluate(chain, p); v != policy.Accept {
			errs = append(errs, fmt.Errorf("%w: the IPv4 policy does not accept %s without conntrack (%s chain: %s): fwpush would lock itself out", ErrLockout, what(), chain, v))
		}
	}
	bastions := inv.Bastions(h.Site)
	if inv.IsBastion(h) {
		check("INPUT", policy.Packet{In: h.PublicIface, Dst: h.PublicIP, Proto: "tcp", SPort: 40000, DPort: h.Port, State: "NEW"},
			func() string {
				return fmt.Sprintf("SSH from anywhere to %s:%d on %s", h.PublicIP, h.Port, h.PublicIface)
			})
		check("OUTPUT", policy.Packet{Out: h.PublicIface, Src: h.PublicIP, Proto: "tcp", SPort: h.Port, DPort: 40000, State: "NEW"},
			func() string { return fmt.Sprintf("SSH replies from %s:%d on %s", h.PublicIP, h.Port, h.PublicIface) })
		for _, o := range inv.HostsIn(h.Site) {
			if o.Name == h.Name || !o.PrivateIP.IsValid() {
				continue
			}
			check("OUTPUT", policy.Packet{Out: h.PrivateIface, Src: h.PrivateIP, Dst: o.PrivateIP, Proto: "tcp", SPort: 40000, DPort: o.Port, State: "NEW"},
				func() string {
					return fmt.Sprintf("SSH from the tunnel to %s (%s:%d) on %s", o.Name, o.PrivateIP, o.Port, h.PrivateIface)
				})
			check("INPUT", policy.Packet{In: h.PrivateIface, Src: o.PrivateIP, Dst: h.PrivateIP, Proto: "tcp", SPort: o.Port, DPort: 40000, State: "NEW"},
				func() string {
					return fmt.Sprintf("SSH replies from %s (%s:%d) on %s", o.Name, o.PrivateIP, o.Port, h.PrivateIface)
				})
		}
	}
	for _, b := range bastions {
		if b == h || !b.PrivateIP.IsValid() {
			continue
		}
		who := fmt.Sprintf("the tunnel (%s)", b.PrivateIP)
		if len(bastions) > 1 {
			who = fmt.Sprintf("the tunnel %s (%s)", b.Name, b.PrivateIP)
		}
		check("INPUT", policy.Packet{In: h.PrivateIface, Src: b.PrivateIP, Dst: h.PrivateIP, Proto: "tcp", SPort: 40000, DPort: h.Port, State: "NEW"},
			func() string {
				return fmt.Sprintf("SSH from %s to %s:%d on %s", who, h.PrivateIP, h.Port, h.PrivateIface)
			})
		check("OUTPUT", policy.Packet{Out: h.PrivateIface, Src: h.PrivateIP, Dst: b.PrivateIP, Proto: "tcp", SPort: h.Port, DPort: 40000, State: "NEW"},
			func() string { return fmt.Sprintf("SSH replies to %s on %s", who, h.PrivateIface) })
	}
	return errs
}
