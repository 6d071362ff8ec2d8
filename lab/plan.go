package lab

import (
	"fmt"
	"net/netip"
	"slices"
)

// The lab's two segments. Every address on a segment reaches every other
// one on it directly (on-link), as on a provider's network; nothing routes
// between segments and no route leaves the lab.
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

// segments returns the addresses on the public and the private segment,
// outsiders included once they are planned.
func (l *Lab) segments() (pub, prv []netip.Addr) {
	nodes := append([]*Node{l.Controller, l.Stranger}, l.Hosts...)
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if n.Public != nil {
			pub = appendValid(pub, n.Public.IP, n.Public.IP6)
		}
		if n.Private != nil {
			prv = appendValid(prv, n.Private.IP, n.Private.IP6)
		}
	}
	return pub, prv
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

// outsiders plans the controller, on the public segment, and the stranger,
// on the private one, at addresses no host uses, in the segment's first
// network.
func outsiders(name string, hosts []*Node) (ctl, str *Node) {
	used := map[netip.Addr]bool{}
	var pub4, pub6, prv4 []netip.Addr
	for _, h := range hosts {
		if h.Public != nil {
			pub4 = appendValid(pub4, h.Public.IP)
			pub6 = appendValid(pub6, h.Public.IP6)
		}
		if h.Private != nil {
			prv4 = appendValid(prv4, h.Private.IP)
		}
	}
	for _, a := range slices.Concat(pub4, pub6, prv4) {
		used[a] = true
	}
	ctl = &Node{Name: Controller, Netns: netnsName(name, "_"+Controller), Public: &Link{
		Iface: "eth0", Peer: Prefix + "-ctl", IP: freeAddr(nets(pub4), fallbackPublic, used),
	}}
	if len(pub6) > 0 {
		ctl.Public.IP6 = freeAddr(nets(pub6), netip.Prefix{}, used)
	}
	used[ctl.Public.IP] = true
	str = &Node{Name: Stranger, Netns: netnsName(name, "_"+Stranger), Private: &Link{
		Iface: "eth0", Peer: Prefix + "-str", IP: freeAddr(nets(prv4), fallbackPrivate, used),
	}}
	return ctl, str
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
