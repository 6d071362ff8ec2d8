// Package flows reduces an inventory to the set of flows its policies
// allow — who may open which protocol and port on which role — and
// compares two inventories: the flows a change opens and closes, the
// hosts it adds and removes, and the hosts whose rules change. It is what
// fwpush diff shows a reviewer: what a change of the inventory does to
// the network, not how the file changed. No I/O.
package flows

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// The kinds of a flow's source.
const (
	KindRole     = "role"     // the hosts of a role
	KindCIDR     = "cidr"     // the addresses of a CIDR (an allow entry's source)
	KindHost     = "host"     // one host: a bastion, whose SSH every host of its site accepts
	KindInternet = "internet" // anyone: a role's public_tcp
)

// AllPorts is a flow's Port when it opens every port of its protocol.
const AllPorts = "all"

// Flow is one port of one protocol that a source may open on the hosts
// of a role. Flows are as fine as that: an allow entry with three ports
// is three flows, so that adding one port is one flow opened.
type Flow struct {
	From     string `json:"from"`      // a role, a CIDR, a host, or "internet"
	FromKind string `json:"from_kind"` // KindRole, KindCIDR, KindHost or KindInternet
	To       string `json:"to"`        // the destination role
	Proto    string `json:"proto"`     // "tcp" or "udp"
	Port     string `json:"port"`      // a port number, or AllPorts
}

// String writes a flow as reviews show it: "lb -> app tcp/80",
// "internet -> lb tcp/443", "tunnel-1 -> db tcp/22".
func (f Flow) String() string {
	return f.From + " -> " + f.To + " " + f.Proto + "/" + f.Port
}

func compare(a, b Flow) int {
	return cmp.Or(
		strings.Compare(a.To, b.To),
		strings.Compare(kindOrder(a.FromKind), kindOrder(b.FromKind)),
		strings.Compare(a.From, b.From),
		strings.Compare(a.Proto, b.Proto),
		comparePorts(a.Port, b.Port),
	)
}

func kindOrder(k string) string {
	return map[string]string{KindInternet: "0", KindHost: "1", KindRole: "2", KindCIDR: "3"}[k]
}

// comparePorts orders ports by number, AllPorts first.
func comparePorts(a, b string) int {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	switch {
	case ea != nil && eb != nil:
		return strings.Compare(a, b)
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	return cmp.Compare(na, nb)
}

// Of returns the flows an inventory allows, sorted by destination role,
// then source, protocol and port; each once:
//
//   - every allow entry: from its role (its hosts, in every site) or CIDR,
//     to the entry's role, on each port it lists (AllPorts for an entry
//     with no port list, which opens every TCP port);
//   - every public_tcp port of a role with a host that has a public
//     address: from the internet;
//   - SSH from each bastion to each role of its site, on the SSH ports of
//     the role's hosts there (a bastion that is its site's only one does
//     not reach itself).
//
// What the lb's OUTPUT chain opens (its egress) is the same flows seen
// from the other end: it is not a flow of its own.
func Of(inv *inventory.Inventory) []Flow {
	var out []Flow
	add := func(f Flow) { out = append(out, f) }
	for _, f := range roles.Flows(inv) {
		from, kind := f.From, KindRole
		if from == "" {
			from, kind = f.FromCIDR.String(), KindCIDR
		}
		if f.Ports == nil {
			add(Flow{From: from, FromKind: kind, To: f.To, Proto: f.Proto, Port: AllPorts})
		}
		for _, p := range f.Ports {
			add(Flow{From: from, FromKind: kind, To: f.To, Proto: f.Proto, Port: strconv.Itoa(p)})
		}
	}
	for _, r := range inv.Roles {
		if !slices.ContainsFunc(inv.HostsOf(r.Name), (*inventory.Host).HasPublic) {
			continue
		}
		for _, p := range r.PublicTCP {
			add(Flow{From: "internet", FromKind: KindInternet, To: r.Name, Proto: "tcp", Port: strconv.Itoa(p)})
		}
	}
	for _, site := range inv.Sites {
		bastions := inv.Bastions(site.Name)
		for _, b := range bastions {
			for _, h := range inv.HostsIn(site.Name) {
				if h == b && len(bastions) == 1 {
					continue
				}
				add(Flow{From: b.Name, FromKind: KindHost, To: h.Role, Proto: "tcp", Port: strconv.Itoa(h.Port)})
			}
		}
	}
	slices.SortFunc(out, compare)
	return slices.Compact(out)
}

// Host is a host a change adds or removes, or whose rules it changes.
type Host struct {
	Host string `json:"host"`
	Role string `json:"role"`
	// Before and After count the host's rules, IPv4 and IPv6, in the old
	// and the new inventory's policies; -1 where it has none (added,
	// removed).
	Before int `json:"before"`
	After  int `json:"after"`
}

// Diff is what a change of the inventory does.
type Diff struct {
	Opened []Flow `json:"opened"`
	Closed []Flow `json:"closed"`
	// Added and Removed are the hosts the change adds and removes.
	Added   []Host `json:"hosts_added"`
	Removed []Host `json:"hosts_removed"`
	// Changed are the hosts of both whose rules change: in number, or
	// in what they say (a port moved, a role changed).
	Changed []Host `json:"hosts_changed"`
}

// Same reports whether the change opens and closes no flow.
func (d *Diff) Same() bool { return len(d.Opened) == 0 && len(d.Closed) == 0 }

// Compare compares the compiled plans of two inventories: the change from
// old to cur. Their policies must be every host's.
func Compare(old, cur *roles.Plan) Diff {
	d := Diff{Opened: []Flow{}, Closed: []Flow{}, Added: []Host{}, Removed: []Host{}, Changed: []Host{}}
	before, after := Of(old.Inventory), Of(cur.Inventory)
	for _, f := range after {
		if _, found := slices.BinarySearchFunc(before, f, compare); !found {
			d.Opened = append(d.Opened, f)
		}
	}
	for _, f := range before {
		if _, found := slices.BinarySearchFunc(after, f, compare); !found {
			d.Closed = append(d.Closed, f)
		}
	}
	for _, p := range cur.Policies {
		q, ok := old.Policy(p.Host.Name)
		switch {
		case !ok:
			d.Added = append(d.Added, Host{Host: p.Host.Name, Role: p.Host.Role, Before: -1, After: countRules(p)})
		case rulesOf(q) != rulesOf(p) || q.Host.Role != p.Host.Role:
			d.Changed = append(d.Changed, Host{Host: p.Host.Name, Role: p.Host.Role, Before: countRules(q), After: countRules(p)})
		}
	}
	for _, q := range old.Policies {
		if _, ok := cur.Policy(q.Host.Name); !ok {
			d.Removed = append(d.Removed, Host{Host: q.Host.Name, Role: q.Host.Role, Before: countRules(q), After: -1})
		}
	}
	return d
}

// rulesOf is a policy's chain declarations and rules, IPv4 then IPv6,
// without its comments (its header names the host and role) and set
// members (the rules matching a set stay the same as it grows).
func rulesOf(p *roles.Policy) string {
	var b strings.Builder
	for _, doc := range [][]byte{p.V4, p.V6} {
		for line := range strings.SplitSeq(string(doc), "\n") {
			if strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, ":") {
				b.WriteString(line)
				b.WriteByte('\n')
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// countRules counts a policy's rules, IPv4 and IPv6.
func countRules(p *roles.Policy) int {
	n := 0
	for _, doc := range [][]byte{p.V4, p.V6} {
		for line := range strings.SplitSeq(string(doc), "\n") {
			if strings.HasPrefix(line, "-A ") {
				n++
			}
		}
	}
	return n
}
