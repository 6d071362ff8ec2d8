// Package inventory is fwpush's model of a fleet: the TOML inventory an
// operator writes, decoded, defaulted and validated. It does no I/O beyond
// reading the inventory file in Load, and it imports no other fwpush package.
package inventory

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Defaults applied when the inventory leaves a key out.
const (
	DefaultUser          = "root"
	DefaultPort          = 22
	DefaultIdentity      = "~/.ssh/id_ed25519"
	DefaultKnownHosts    = "~/.ssh/known_hosts"
	DefaultParallel      = 20
	DefaultTimeout       = 10 * time.Second
	DefaultRollbackAfter = 30 * time.Second
	// MaxTimeout bounds ssh.timeout: a connection that has not answered in
	// two minutes is not coming, and every step of a run waits that long
	// for a stuck host.
	MaxTimeout = 2 * time.Minute
	// MaxRollbackAfter bounds ssh.rollback_after: a policy that cuts SSH
	// stays in place, and the run waits, that long.
	MaxRollbackAfter    = 10 * time.Minute
	DefaultPublicIface  = "eth0"
	DefaultPrivateIface = "eth1"
)

// Inventory is a loaded and validated fleet. Hosts and Roles are sorted by
// name so that everything derived from an inventory is deterministic.
type Inventory struct {
	// Path is the file the inventory was read from ("" when parsed from
	// memory without a name). User templates are resolved relative to it.
	Path       string
	SSH        SSH
	Interfaces Interfaces
	Firewall   Firewall
	Hosts      []*Host
	Roles      []*Role
	// Sites are the data centres, sorted by name: each a private network
	// of its own, reached through its own bastions. An inventory without
	// [sites] has one, named "", whose bastions are [ssh] tunnel.
	Sites []*Site
	// Warnings are keys that are valid but have no effect, or one that is
	// probably not meant, in file order. They do not make it invalid.
	Warnings []Problem
	// DigitalOcean is where hosts beyond the file's come from; nil when
	// the inventory has no [digitalocean] table.
	DigitalOcean *DigitalOcean

	lines map[string]int // where each key is written (see keyLines)
	// found are the hosts Resolve added from a source, by name.
	found map[string]Found
}

// Line returns the line key is written on ("roles.db.template",
// "roles.app.allow[1].from"), or that of its nearest enclosing table when
// the key itself is not written; 0 when none is known.
func (inv *Inventory) Line(key string) int {
	if _, ok := hostOfKey(key, inv.found); ok {
		return 0 // the key is not written: the host came from a source
	}
	return lineOf(inv.lines, key)
}

// Problem returns a problem at key, with its line, for the packages that
// check what an inventory renders to, so that their messages take the
// same "file:line: key: message" form. A key of a host that came from a
// source has no line: the problem names the source instead.
func (inv *Inventory) Problem(key, msg string) Problem {
	if name, ok := hostOfKey(key, inv.found); ok {
		return Problem{Key: key, Msg: msg, Source: inv.found[name].Source}
	}
	return Problem{Line: inv.Line(key), Key: key, Msg: msg}
}

// SSH holds how fwpush reaches the fleet.
type SSH struct {
	User       string
	Port       int
	Identity   string // private key file, "~" not yet expanded
	KnownHosts string // known_hosts file, "~" not yet expanded
	// Tunnel names the host every other host is reached through: the
	// first of Tunnels. It is "" in an inventory with [sites], whose
	// sites name their own bastions.
	Tunnel string
	// Tunnels are the bastions of an inventory without [sites], in order
	// of preference ([ssh] tunnel, a name or a list).
	Tunnels  []string
	Parallel int
	Timeout  time.Duration
	// RollbackAfter is how long a host waits for fwpush to confirm a new
	// policy before restoring its previous rules by itself.
	RollbackAfter time.Duration
	// Become is how the login user becomes root on the hosts: BecomeSudo,
	// BecomeNone, or "" to decide per host by its user (see Host.Become).
	Become string
	// Given says which connection settings the inventory wrote, rather
	// than left to their defaults: OpenSSH's client configuration may fill
	// the others.
	Given Given
}

// Given says which connection settings an inventory wrote. The values in
// effect are always set, to the defaults where it wrote nothing.
type Given struct {
	User, Port, Identity, KnownHosts bool
	// Become is set when the inventory chose how to become root, for the
	// host or in [ssh], rather than leaving it to the user.
	Become bool
}

// The ways of becoming root on a host.
const (
	BecomeSudo = "sudo" // sudo, non-interactive; a password on stdin if sudo wants one
	BecomeNone = "none" // the login user is root, or has its rights
)

// Interfaces are the fleet-wide default interface names.
type Interfaces struct {
	Public  string
	Private string
}

// Firewall is what fwpush leaves to other software in a host's filter
// table.
type Firewall struct {
	// Preserve lists glob patterns (path.Match: *, ? and [...]) of the
	// chains other software keeps on every host (Docker's DOCKER*,
	// fail2ban's f2b-*): fwpush keeps them, their rules and the jumps the
	// built-in chains hold into them, and never counts their content as
	// drift. Every other chain the policy does not declare is drift.
	Preserve []string
	// Backend is [firewall] backend as written: the backend of the hosts
	// whose role and own table name none; "" for the default, IPTables.
	Backend string
}

// The firewall backends fwpush writes a host's policy with.
const (
	// IPTables loads the policy into the filter table with
	// iptables-restore and ip6tables-restore, keeping the chains that
	// preserve patterns name: the default.
	IPTables = "iptables"
	// NFTables loads the policy with nft as one table of fwpush's own,
	// table inet fwpush, IPv4 and IPv6 at once, and touches no other.
	NFTables = "nftables"
)

// Backends are the values backend takes.
var Backends = []string{IPTables, NFTables}

// Host is one server. Per-host overrides are already resolved: User, Port,
// PublicIface and PrivateIface always hold the values in effect.
type Host struct {
	Name         string
	Role         string
	PublicIP     netip.Addr // invalid (zero) when the host has no public address
	PrivateIP    netip.Addr
	PublicIP6    netip.Addr
	PublicIface  string
	PrivateIface string
	User         string
	Port         int
	// Site is the data centre the host is in; "" in an inventory without
	// [sites].
	Site string
	// Become is how the login user becomes root there: BecomeSudo, by
	// default whenever User is not root, else BecomeNone.
	Become string
	// Given says whether the inventory wrote the host's user, port and
	// become, for the host or in [ssh].
	Given Given
	// Source says where a host not written by hand came from
	// ("digitalocean droplet 1234 (tag app)"); "" for a host of the file.
	Source string
	// Backend is the firewall backend of the host, IPTables or NFTables:
	// its own backend key, else its role's, else [firewall]'s, else
	// IPTables. GivenBackend is the host's own key as written ("": none).
	Backend      string
	GivenBackend string
}

// Site is one data centre: its hosts share a private network, which
// ends at the site; traffic between sites crosses the internet.
type Site struct {
	// Name is "" for the one site of an inventory without [sites].
	Name string
	// Tunnels are the site's bastions in order of preference: fwpush
	// reaches the site through the first that answers, and every host of
	// the site accepts SSH from each of them on its private interface, so
	// that any of them can take over.
	Tunnels []string
}

// String names the site in messages: "site NAME", or "" for the one site
// of an inventory without [sites].
func (s *Site) String() string {
	if s.Name == "" {
		return ""
	}
	return "site " + s.Name
}

// HasPublic reports whether the host has a public interface.
func (h *Host) HasPublic() bool { return h.PublicIP.IsValid() || h.PublicIP6.IsValid() }

// Role is what a group of hosts allows.
type Role struct {
	Name string
	// Template is a built-in template name (tunnel, public, private) or a
	// path to a user template, relative to the inventory file.
	Template   string
	PublicTCP  []int
	Allow      []Allow
	LogDropped bool
	// Preserve lists more chain patterns kept on this role's hosts, on
	// top of [firewall] preserve.
	Preserve []string
	// Backend is the role's backend key as written ("": [firewall]'s).
	Backend string
}

// Allow is one ingress rule of a role: traffic from a source, either the
// private addresses of another role's hosts or a CIDR.
type Allow struct {
	From     string       // as written
	FromRole string       // set when From names a role
	FromCIDR netip.Prefix // set when From is a CIDR
	// TCP lists the allowed TCP ports; nil with AllTCP set means every TCP port.
	TCP    []int
	UDP    []int
	AllTCP bool
	// CrossSiteOK is set by cross_site = "ok": the operator knows that
	// the flow crosses the internet between sites, and validate does not
	// warn that it is unencrypted.
	CrossSiteOK bool
}

// Host returns the host with the given name.
func (inv *Inventory) Host(name string) (*Host, bool) {
	i, ok := slices.BinarySearchFunc(inv.Hosts, name, func(h *Host, n string) int { return strings.Compare(h.Name, n) })
	if !ok {
		return nil, false
	}
	return inv.Hosts[i], true
}

// Role returns the role with the given name.
func (inv *Inventory) Role(name string) (*Role, bool) {
	i, ok := slices.BinarySearchFunc(inv.Roles, name, func(r *Role, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return nil, false
	}
	return inv.Roles[i], true
}

// Tunnel returns the preferred tunnel (bastion) host of an inventory
// without [sites]; nil in one with [sites] (see Bastions).
func (inv *Inventory) Tunnel() *Host {
	h, _ := inv.Host(inv.SSH.Tunnel)
	return h
}

// Site returns the site with the given name ("" in an inventory without
// [sites]).
func (inv *Inventory) Site(name string) (*Site, bool) {
	for _, s := range inv.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// HasSites reports whether the inventory declares [sites].
func (inv *Inventory) HasSites() bool {
	return len(inv.Sites) > 0 && inv.Sites[0].Name != ""
}

// Bastions returns the bastions of a site, in order of preference.
func (inv *Inventory) Bastions(site string) []*Host {
	s, ok := inv.Site(site)
	if !ok {
		return nil
	}
	var out []*Host
	for _, name := range s.Tunnels {
		if h, ok := inv.Host(name); ok {
			out = append(out, h)
		}
	}
	return out
}

// IsBastion reports whether h is a bastion of its site: reached from the
// internet, and every other host of the site through it.
func (inv *Inventory) IsBastion(h *Host) bool {
	s, ok := inv.Site(h.Site)
	return ok && slices.Contains(s.Tunnels, h.Name)
}

// HostsIn returns the hosts of a site, sorted by name.
func (inv *Inventory) HostsIn(site string) []*Host {
	var out []*Host
	for _, h := range inv.Hosts {
		if h.Site == site {
			out = append(out, h)
		}
	}
	return out
}

// Preserve returns the chain patterns kept on the hosts of a role:
// [firewall] preserve, then the role's own, each once.
func (inv *Inventory) Preserve(role string) []string {
	all := inv.Firewall.Preserve
	if r, ok := inv.Role(role); ok {
		all = append(slices.Clip(all), r.Preserve...)
	}
	var out []string
	for _, p := range all {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// PreserveKey returns the key that the nth pattern of Preserve(role) is
// written at: "firewall.preserve[0]" or "roles.app.preserve[1]".
func (inv *Inventory) PreserveKey(role string, n int) string {
	pats := inv.Preserve(role)
	if n < 0 || n >= len(pats) {
		return ""
	}
	if i := slices.Index(inv.Firewall.Preserve, pats[n]); i >= 0 {
		return fmt.Sprintf("firewall.preserve[%d]", i)
	}
	r, _ := inv.Role(role)
	return fmt.Sprintf("roles.%s.preserve[%d]", role, slices.Index(r.Preserve, pats[n]))
}

// HostsOf returns the hosts of a role, sorted by name.
func (inv *Inventory) HostsOf(role string) []*Host {
	var out []*Host
	for _, h := range inv.Hosts {
		if h.Role == role {
			out = append(out, h)
		}
	}
	return out
}
