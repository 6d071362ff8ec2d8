package policy

import "net/netip"

// matchSource matches a rule's source against a packet's: its address,
// or every address of its SrcNet.
func matchSource(m match[netip.Prefix], p Packet) tri {
	if !p.SrcNet.IsValid() {
		return matchPrefix(m, p.Src)
	}
	if !m.set {
		return yes
	}
	return flip(m.neg, covers(m.v, p.SrcNet))
}

// covers says whether prefix a holds every address of b (yes), none (no)
// or some (maybe).
func covers(a, b netip.Prefix) tri {
	switch {
	case a.Addr().Is4() != b.Addr().Is4():
		return no
	case a.Bits() <= b.Bits() && a.Contains(b.Addr()):
		return yes
	case a.Overlaps(b):
		return maybe
	}
	return no
}

// matchSetNet is matchSet for a source that is any address of net: in
// the set for certain when one member holds all of net, certainly not
// when no member overlaps it.
func matchSetNet(m SetMatch, s *Set, net netip.Prefix) tri {
	res := no
	for _, member := range s.Members {
		res = max(res, covers(member, net))
	}
	if res != yes && len(s.Other) > 0 {
		res = maybe
	}
	return flip(m.Neg, res)
}
