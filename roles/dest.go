package roles

import (
	"net/netip"

	"github.com/fwpush/fwpush/inventory"
)

// Dest is an address a host is reached on by another: which of its
// addresses (Private, Public or Public6), and the address.
type Dest struct {
	Net  string
	Addr netip.Addr
}

// Dests are where src reaches dst, as the check matrix probes it: dst's
// private address in src's own site; in another site, each public address
// of dst of a family src has one of too. None when dst has no such
// address.
func Dests(src, dst *inventory.Host) []Dest {
	var out []Dest
	for _, d := range dests(src, dst) {
		out = append(out, Dest{Net: d.net, Addr: d.addr})
	}
	return out
}
