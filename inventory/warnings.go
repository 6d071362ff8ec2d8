package inventory

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// noEffect warns about keys that are valid but change nothing, and about
// public_tcp that opens SSH to the internet. Warnings never make an
// inventory invalid. What a user template does with a key is its own
// business: only the built-in templates' behaviour is assumed.
func (v *validator) noEffect(inv *Inventory) {
	bastionRoles := map[string]bool{}
	for _, h := range inv.Hosts {
		if inv.IsBastion(h) {
			bastionRoles[h.Role] = true
		}
	}
	for _, r := range inv.Roles {
		hosts := inv.HostsOf(r.Name)
		if r.Template != "tunnel" && !bastionRoles[r.Name] {
			v.publicSSH(r, hosts)
		}
		if r.Template == "public" || r.Template == "tunnel" {
			v.publicTCPNowhere(r, hosts)
		}
		if r.Template == "private" {
			for _, h := range hosts {
				if inv.IsBastion(h) {
					continue // fwpush connects to a bastion's public_ip
				}
				if h.Source != "" {
					continue // the source reports every address; nobody wrote it
				}
				for _, f := range []struct {
					key string
					ip  netip.Addr
				}{{"public_ip", h.PublicIP}, {"public_ip6", h.PublicIP6}} {
					// Flows from other sites come in on it, or leave
					// from it.
					if f.ip.IsValid() && !v.publicUsed[h.Name][f.key] {
						v.warnf("hosts."+h.Name+"."+f.key, "role %q uses the private template, which opens nothing on the public interface: %s changes no rule", r.Name, f.key)
					}
				}
			}
		}
		v.duplicateAllows(r)
	}
}

// publicSSH warns when public_tcp lists the SSH port of hosts that should
// be reached through the tunnel only: it opens SSH to the internet on them.
func (v *validator) publicSSH(r *Role, hosts []*Host) {
	for _, p := range r.PublicTCP {
		var on []string
		for _, h := range hosts {
			if h.Port == p {
				on = append(on, h.Name)
			}
		}
		if len(on) > 0 {
			v.warnf("roles."+r.Name+".public_tcp", "%d is the SSH port of %s: public_tcp opens SSH to the internet on a role that is reached through the tunnel", p, names(on))
		}
	}
}

// publicTCPNowhere warns about hosts of a role with public_tcp that have
// no public address: the built-in templates open public_tcp only on the
// addresses a host has.
func (v *validator) publicTCPNowhere(r *Role, hosts []*Host) {
	if len(r.PublicTCP) == 0 {
		return
	}
	for _, h := range hosts {
		if !h.HasPublic() {
			v.warnf("hosts."+h.Name, "role %q opens public_tcp %s, but the host has neither public_ip nor public_ip6: nothing is opened on it", r.Name, joinPorts(r.PublicTCP))
		}
	}
}

// duplicateAllows warns about allow entries, or parts of them, that an
// earlier entry of the same role already opens from the same source (or
// from a CIDR that contains it).
func (v *validator) duplicateAllows(r *Role) {
	for j := range r.Allow {
		b := &r.Allow[j]
		if b.FromRole == "" && !b.FromCIDR.IsValid() {
			continue // an invalid source, reported already
		}
		var by []int // the earlier entries that cover some of b
		coveredTCP, coveredUDP := []int{}, []int{}
		allTCPCovered := false
		for i := range r.Allow[:j] {
			a := &r.Allow[i]
			if !covers(a, b) {
				continue
			}
			hit := false
			if b.AllTCP && a.AllTCP {
				allTCPCovered, hit = true, true
			}
			for _, p := range b.TCP {
				if a.AllTCP || slices.Contains(a.TCP, p) {
					if !slices.Contains(coveredTCP, p) {
						coveredTCP = append(coveredTCP, p)
					}
					hit = true
				}
			}
			for _, p := range b.UDP {
				if slices.Contains(a.UDP, p) {
					if !slices.Contains(coveredUDP, p) {
						coveredUDP = append(coveredUDP, p)
					}
					hit = true
				}
			}
			if hit {
				by = append(by, i)
			}
		}
		if len(by) == 0 {
			continue
		}
		key := fmt.Sprintf("roles.%s.allow[%d]", r.Name, j)
		entries := make([]string, len(by))
		for i, n := range by {
			entries[i] = fmt.Sprintf("allow[%d]", n)
		}
		if b.AllTCP == allTCPCovered && len(coveredTCP) == len(b.TCP) && len(coveredUDP) == len(b.UDP) {
			v.warnf(key, "duplicates %s: it allows nothing more", names(entries))
			continue
		}
		var what []string
		if len(coveredTCP) > 0 {
			slices.Sort(coveredTCP)
			what = append(what, "tcp "+joinPorts(coveredTCP))
		}
		if len(coveredUDP) > 0 {
			slices.Sort(coveredUDP)
			what = append(what, "udp "+joinPorts(coveredUDP))
		}
		v.warnf(key, "%s from %s is already allowed by %s", strings.Join(what, " and "), b.From, names(entries))
	}
}

// covers tells whether a's source includes every address of b's.
func covers(a, b *Allow) bool {
	switch {
	case a.FromRole != "" || b.FromRole != "":
		return a.FromRole == b.FromRole
	case !a.FromCIDR.IsValid() || !b.FromCIDR.IsValid():
		return false
	}
	return a.FromCIDR.Bits() <= b.FromCIDR.Bits() && a.FromCIDR.Contains(b.FromCIDR.Addr())
}

// names lists a few names in prose: "a", "a and b", "a, b and 3 more".
func names(ns []string) string {
	switch n := len(ns); {
	case n == 1:
		return ns[0]
	case n <= 3:
		return strings.Join(ns[:n-1], ", ") + " and " + ns[n-1]
	default:
		return fmt.Sprintf("%s and %d more", strings.Join(ns[:2], ", "), n-2)
	}
}

func joinPorts(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}
