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
}

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
		for _, a := range r.Allow {
			base := Flow{From: a.FromRole, FromCIDR: a.FromCIDR, To: r.Name}
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
// filter table, for IPv4 and IPv6.
type Policy struct {
	Host *inventory.Host
	V4   []byte
	V6   []byte
}

// Plan is a compiled inventory: every host's policy, sorted by host name.
type Plan struct {
	Inventory *inventory.Inventory
	Policies  []*Policy

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

// Data is what host h's template receives for one address family.
func Data(inv *inventory.Inventory, flows []Flow, h *inventory.Host, family int) templates.Data {
	role, _ := inv.Role(h.Role)
	tun := inv.Tunnel()
	d := templates.Data{
		Family:   family,
		Host:     templates.Host{Name: h.Name, Role: h.Role, PublicIP: addr(h.PublicIP), PrivateIP: addr(h.PrivateIP), PublicIP6: addr(h.PublicIP6)},
		Role:     templates.Role{Name: role.Name, Template: role.Template, PublicTCP: role.PublicTCP, LogDropped: role.LogDropped},
		Tunnel:   templates.Tunnel{Name: tun.Name, PublicIP: addr(tun.PublicIP), PrivateIP: addr(tun.PrivateIP), SSHPort: tun.Port},
		SSHPort:  h.Port,
		IsTunnel: h.Name == tun.Name,
		Interfaces: templates.Interfaces{
			Public: h.PublicIface, Private: h.PrivateIface, HasPublic: h.HasPublic(),
		},
		Ingress:       []templates.Rule{},
		Egress:        []templates.Rule{},
		TunnelReplies: []templates.Rule{},
		PublicTCP:     []templates.Rule{},
	}
	if len(role.PublicTCP) > 0 {
		d.PublicTCP = templates.PortRules("", "", "tcp", role.PublicTCP)
	}
	if family != 4 {
		return d // the private network is IPv4
	}
	for _, f := range flows {
		if f.To == h.Role {
			d.Ingress = append(d.Ingress, ingress(inv, f, h)...)
		}
		if f.From == h.Role {
			d.Egress = append(d.Egress, egress(inv, f, h)...)
		}
	}
	if d.IsTunnel {
		for _, o := range inv.Hosts {
			if o.Name == h.Name || !o.PrivateIP.IsValid() {
				continue
			}
			d.TunnelReplies = append(d.TunnelReplies, templates.Rule{
				Peer: o.PrivateIP.String() + "/32", PeerName: o.Name, Proto: "tcp", Ports: []int{o.Port},
				Match: fmt.Sprintf("-p tcp -m tcp --sport %d", o.Port),
			})
		}
	}
	return d
}

func ingress(inv *inventory.Inventory, f Flow, h *inventory.Host) []templates.Rule {
	var out []templates.Rule
	if f.From == "" {
		return templates.PortRules(f.FromCIDR.String(), f.FromCIDR.String(), f.Proto, f.Ports)
	}
	for _, src := range inv.HostsOf(f.From) {
		if src.Name == h.Name || !src.PrivateIP.IsValid() {
			continue // traffic to itself never leaves lo
		}
		out = append(out, templates.PortRules(src.PrivateIP.String()+"/32", src.Name, f.Proto, f.Ports)...)
	}
	return out
}

func egress(inv *inventory.Inventory, f Flow, h *inventory.Host) []templates.Rule {
	var out []templates.Rule
	for _, dst := range inv.HostsOf(f.To) {
		if dst.Name == h.Name || !dst.PrivateIP.IsValid() {
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
// path fwpush depends on: the tunnel is reached from anywhere on its public
// interface, every other host from the tunnel's private IP on its private
// interface, and where OUTPUT drops, the replies get out. The packets are
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
	tun := inv.Tunnel()
	type path struct {
		chain, what string
		p           policy.Packet
	}
	var paths []path
	if h.Name == tun.Name {
		paths = append(paths,
			path{"INPUT", fmt.Sprintf("SSH from anywhere to %s:%d on %s", h.PublicIP, h.Port, h.PublicIface),
				policy.Packet{In: h.PublicIface, Dst: h.PublicIP, Proto: "tcp", SPort: 40000, DPort: h.Port, State: "NEW"}},
			path{"OUTPUT", fmt.Sprintf("SSH replies from %s:%d on %s", h.PublicIP, h.Port, h.PublicIface),
				policy.Packet{Out: h.PublicIface, Src: h.PublicIP, Proto: "tcp", SPort: h.Port, DPort: 40000, State: "NEW"}},
		)
		for _, o := range inv.Hosts {
			if o.Name == h.Name || !o.PrivateIP.IsValid() {
				continue
			}
			paths = append(paths,
				path{"OUTPUT", fmt.Sprintf("SSH from the tunnel to %s (%s:%d) on %s", o.Name, o.PrivateIP, o.Port, h.PrivateIface),
					policy.Packet{Out: h.PrivateIface, Src: h.PrivateIP, Dst: o.PrivateIP, Proto: "tcp", SPort: 40000, DPort: o.Port, State: "NEW"}},
				path{"INPUT", fmt.Sprintf("SSH replies from %s (%s:%d) on %s", o.Name, o.PrivateIP, o.Port, h.PrivateIface),
					policy.Packet{In: h.PrivateIface, Src: o.PrivateIP, Dst: h.PrivateIP, Proto: "tcp", SPort: o.Port, DPort: 40000, State: "NEW"}},
			)
		}
	} else {
		paths = append(paths,
			path{"INPUT", fmt.Sprintf("SSH from the tunnel (%s) to %s:%d on %s", tun.PrivateIP, h.PrivateIP, h.Port, h.PrivateIface),
				policy.Packet{In: h.PrivateIface, Src: tun.PrivateIP, Dst: h.PrivateIP, Proto: "tcp", SPort: 40000, DPort: h.Port, State: "NEW"}},
			path{"OUTPUT", fmt.Sprintf("SSH replies to the tunnel (%s) on %s", tun.PrivateIP, h.PrivateIface),
				policy.Packet{Out: h.PrivateIface, Src: h.PrivateIP, Dst: tun.PrivateIP, Proto: "tcp", SPort: h.Port, DPort: 40000, State: "NEW"}},
		)
	}
	var errs []error
	for _, p := range paths {
		if v := rs.Evaluate(p.chain, p.p); v != policy.Accept {
			errs = append(errs, fmt.Errorf("%w: the IPv4 policy does not accept %s without conntrack (%s chain: %s): fwpush would lock itself out", ErrLockout, p.what, p.chain, v))
		}
	}
	return errs
}
