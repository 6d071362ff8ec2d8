package lab

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// The lab's segments: the public one, and a private one per site (one for
// an inventory without [sites]). Every address on a segment reaches every
// other one on it directly (on-link), as on a provider's network; nothing
// routes between segments and no route leaves the lab.
//
// An interface gets its address with the /24 (IPv4) or /64 (IPv6) around it,
// which gives the kernel's own prefix route, plus an on-link route for every
// other such network the segment's addresses span. A network that holds
// addresses of both segments (an inventory whose public and private ranges
// overlap) cannot be routed as a whole to either interface: there the
// addresses are /32 (/128) and every peer gets a host route.

// Fallback networks for a segment without any inventory address.
var (
	fallbackPublic  = netip.MustParsePrefix("203.0.113.0/24")
	fallbackPrivate = netip.MustParsePrefix("198.18.0.0/24")
)

// netOf is the network an address is routed in: its /24 or /64.
func netOf(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// segments returns the addresses on the public segment and on each site's
// private segment, outsiders included once they are planned.
func (l *Lab) segments() (pub []netip.Addr, prv map[string][]netip.Addr) {
	prv = map[string][]netip.Addr{}
	for _, n := range l.nodes() {
		if n == nil {
			continue
		}
		if n.Public != nil {
			pub = appendValid(pub, n.Public.IP, n.Public.IP6)
		}
		if n.Private != nil {
			prv[n.Site] = appendValid(prv[n.Site], n.Private.IP, n.Private.IP6)
		}
	}
	return pub, prv
}

// allPrivate is every private segment's addresses together.
func allPrivate(prv map[string][]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, site := range slices.Sorted(maps.Keys(prv)) {
		out = append(out, prv[site]...)
	}
	return out
}

func appendValid(s []netip.Addr, ips ...netip.Addr) []netip.Addr {
	for _, ip := range ips {
		if ip.IsValid() {
			s = append(s, ip)
		}
	}
	return s
}

// nets returns the sorted networks addrs fall in.
func nets(addrs []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netOf(a))
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// sharedNets returns the networks that hold addresses of both segments.
func sharedNets(pub, prv []netip.Addr) map[netip.Prefix]bool {
	shared := map[netip.Prefix]bool{}
	pn := nets(pub)
	for _, n := range nets(prv) {
		if slices.Contains(pn, n) {
			shared[n] = true
		}
	}
	return shared
}

// linkConfig returns the ip(8) batch lines that give lk its addresses and
// its routes on a segment holding seg: addresses first, routes after the
// link is up (the kernel refuses routes through a down device).
func linkConfig(lk *Link, seg []netip.Addr, shared map[netip.Prefix]bool) (addrs, routes []string) {
	for _, ip := range []netip.Addr{lk.IP, lk.IP6} {
		if !ip.IsValid() {
			continue
		}
		p := netip.PrefixFrom(ip, netOf(ip).Bits())
		if shared[netOf(ip)] {
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		line := fmt.Sprintf("address add %s dev %s", p, lk.Iface)
		if ip.Is6() {
			// Duplicate address detection would hold the address back for
			// a second or two; the lab's addresses are unique by construction.
			line += " nodad"
		}
		addrs = append(addrs, line)
	}
	for _, n := range nets(seg) {
		own := lk.IP
		if n.Addr().Is6() {
			own = lk.IP6
		}
		if !own.IsValid() {
			continue // no address of that family to send from
		}
		if !shared[n] {
			if n != netOf(own) {
				routes = append(routes, fmt.Sprintf("route add %s dev %s", n, lk.Iface))
			}
			continue
		}
		for _, a := range seg {
			if a != own && netOf(a) == n {
				routes = append(routes, fmt.Sprintf("route add %s dev %s", netip.PrefixFrom(a, a.BitLen()), lk.Iface))
			}
		}
	}
	return addrs, routes
}

// outsiders plans the controller, on the public segment, and a stranger
// on each site's private segment (sites: none for an inventory without
// [sites], which has one), at addresses no host uses, in the segment's
// first network.
func outsiders(name string, hosts []*Node, sites []string) (ctl *Node, strs []*Node) {
	used := map[netip.Addr]bool{}
	var pub4, pub6 []netip.Addr
	prv4 := map[string][]netip.Addr{}
	for _, h := range hosts {
		if h.Public != nil {
			pub4 = appendValid(pub4, h.Public.IP)
			pub6 = appendValid(pub6, h.Public.IP6)
		}
		if h.Private != nil {
			prv4[h.Site] = appendValid(prv4[h.Site], h.Private.IP)
		}
	}
	for _, a := range slices.Concat(pub4, pub6, allPrivate(prv4)) {
		used[a] = true
	}
	ctl = &Node{Name: Controller, Netns: netnsName(name, "_"+Controller), Public: &Link{
		Iface: "eth0", Peer: Prefix + "-ctl", IP: freeAddr(nets(pub4), fallbackPublic, used),
	}}
	if len(pub6) > 0 {
		ctl.Public.IP6 = freeAddr(nets(pub6), netip.Prefix{}, used)
	}
	used[ctl.Public.IP] = true
	if sites == nil {
		sites = []string{""}
	}
	for i, site := range sites {
		str := &Node{Name: StrangerOf(site), Netns: netnsName(name, "_"+Stranger), Site: site, Private: &Link{
			Iface: "eth0", Peer: Prefix + "-str", IP: freeAddr(nets(prv4[site]), fallbackPrivate, used),
		}}
		if i > 0 {
			str.Netns, str.Private.Peer = netnsName(name, fmt.Sprintf("_%s-%d", Stranger, i)), fmt.Sprintf("%s-str%d", Prefix, i)
		}
		used[str.Private.IP] = true
		strs = append(strs, str)
	}
	return ctl, strs
}

// freeAddr returns the highest unused host address of the first network
// that has one, trying fallback last.
func freeAddr(candidates []netip.Prefix, fallback netip.Prefix, used map[netip.Addr]bool) netip.Addr {
	if fallback.IsValid() {
		candidates = append(candidates, fallback)
	}
	for _, n := range candidates {
		// The top of the network: .254 for a /24 (.255 is broadcast),
		// ::fffe for a /64; at most a few thousand tries.
		var a netip.Addr
		if n.Addr().Is4() {
			b := n.Addr().As4()
			b[3] = 255
			a = netip.AddrFrom4(b)
		} else {
			b := n.Addr().As16()
			b[14], b[15] = 0xff, 0xff
			a = netip.AddrFrom16(b)
		}
		for range 4096 {
			a = a.Prev()
			if !a.IsValid() || !n.Contains(a) || a == n.Addr() {
				break
			}
			if !used[a] {
				return a
			}
		}
	}
	return netip.Addr{}
}
