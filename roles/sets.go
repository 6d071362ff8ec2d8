package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/templates"
)

// Options choose how policies are compiled.
type Options struct {
	// Sets matches the hosts of a role through ipsets, one per role and
	// address family, with one rule per flow, rather than with one rule
	// per address: a server's rules then stay the same however large the
	// fleet grows, and only its sets' members change. The policy carries
	// its sets (Policy.Sets), which must be on the host before its rules
	// load (Policy.IPSets renders them for ipset restore).
	Sets bool
}

// withSets tells whether h's rules match the hosts of a role through
// sets: with Options.Sets, and on every host of the nftables backend,
// whose table holds its sets (named sets of nft, applied with its rules in
// one transaction: nothing but nft is needed on the host).
func (c *compiler) withSets(h *inventory.Host) bool {
	return c.opts.Sets || h.Backend == inventory.NFTables
}

// Default are the options Compile uses: a role's members in sets, one
// rule per flow, which the runner stages, swaps in under the guard and
// persists with the rules (docs/sets.md). Options{} compiles a rule per
// member, as tests that read rules by address want.
func Default() Options { return Options{Sets: true} }

// The kinds of a role's sets: the name's suffix.
const (
	// private4 holds the private addresses of the role's hosts in the
	// site of the host whose policy uses it.
	private4 = "4"
	// public4 and public6 hold the public addresses of the role's hosts
	// in the other sites, of each family.
	public4 = "pub4"
	public6 = "pub6"
)

// setName names the set of the addresses of a role's hosts of one kind:
// SetPrefix, the role and the kind ("fwp-app-4", "fwp-app-pub6"). A name
// longer than ipset takes (a role name of more than 22 characters) keeps
// the role's first 13 characters, a '~', which no role name has, and 8 hex
// digits of the SHA-256 of the whole name ("fwp-a-very-long-r~1a2b3c4d-4"):
// always the same for the same role, and two roles that share their first
// 13 characters are told apart (Compile refuses the 1 in 4 billion pairs
// that are not). No kind has a '-', so no two roles' names meet.
func setName(role, kind string) string {
	stem := role
	if len(policy.SetPrefix)+len(role)+len("-"+public4) > policy.MaxSetName {
		sum := sha256.Sum256([]byte(role))
		stem = role[:13] + "~" + hex.EncodeToString(sum[:4])
	}
	return policy.SetPrefix + stem + "-" + kind
}

// sshSetName names the set of the private addresses of the hosts of a
// site whose sshd listens on port, which the site's bastions accept the
// replies of: "fwp-sshd22". It has no '-' after SetPrefix, which every
// role's set has.
func sshSetName(port int) string {
	return policy.SetPrefix + "sshd" + strconv.Itoa(port)
}

// setKey identifies a set: its name, and the site whose view of the fleet
// it holds (a role's private addresses differ from one site to the next).
type setKey struct {
	name, site string
}

// hostsOf returns the hosts of a role, from an index made once.
func (c *compiler) hostsOf(role string) []*inventory.Host {
	if c.byRole == nil {
		c.byRole = map[string][]*inventory.Host{}
		for _, h := range c.inv.Hosts {
			c.byRole[h.Role] = append(c.byRole[h.Role], h)
		}
	}
	return c.byRole[role]
}

// roleSet returns the set of a role's addresses of a kind, as the hosts of
// site see them, made once and shared by every policy that uses it; nil
// when no host of the role has such an address.
func (c *compiler) roleSet(role, site, kind string) *policy.Set {
	key := setKey{setName(role, kind), site}
	if s, ok := c.sets[key]; ok {
		return s
	}
	family := policy.Inet
	var members []netip.Prefix
	for _, h := range c.hostsOf(role) {
		var a netip.Addr
		switch {
		case kind == private4 && h.Site == site:
			a = h.PrivateIP
		case kind == public4 && h.Site != site:
			a = h.PublicIP
		case kind == public6 && h.Site != site:
			a, family = h.PublicIP6, policy.Inet6
		}
		if a.IsValid() {
			members = append(members, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	c.claim(key.name, "roles."+role)
	return c.keep(key, family, members)
}

// sshSet returns the set of the private addresses of the hosts of a site
// whose sshd listens on port; nil when there are none.
func (c *compiler) sshSet(site string, port int) *policy.Set {
	key := setKey{sshSetName(port), site}
	if s, ok := c.sets[key]; ok {
		return s
	}
	var members []netip.Prefix
	for _, h := range c.hostsInSite(site) {
		if h.Port == port && h.PrivateIP.IsValid() {
			members = append(members, netip.PrefixFrom(h.PrivateIP, 32))
		}
	}
	return c.keep(key, policy.Inet, members)
}

// hostsInSite returns the hosts of a site, from an index made once.
func (c *compiler) hostsInSite(site string) []*inventory.Host {
	if c.bySite == nil {
		c.bySite = map[string][]*inventory.Host{}
		for _, h := range c.inv.Hosts {
			c.bySite[h.Site] = append(c.bySite[h.Site], h)
		}
	}
	return c.bySite[site]
}

func (c *compiler) keep(key setKey, family string, members []netip.Prefix) *policy.Set {
	if c.sets == nil {
		c.sets = map[setKey]*policy.Set{}
	}
	var s *policy.Set
	if len(members) > 0 {
		s = policy.NewSet(key.name, family, members)
	}
	c.sets[key] = s
	return s
}

// claim records that a set name is a role's, and reports two roles whose
// names shorten to the same set name.
func (c *compiler) claim(name, key string) {
	if c.setOwners == nil {
		c.setOwners = map[string]string{}
	}
	owner, ok := c.setOwners[name]
	switch {
	case !ok:
		c.setOwners[name] = key
	case owner != key:
		c.problems.add(key, "set:"+name, fmt.Sprintf("its ipset would be named %s, as %s's: rename one of the two roles", name, owner), "")
	}
}

// hostSets are the sets a host's template data names: those its policy
// may match.
type hostSets struct {
	offered []*policy.Set
}

func (hs *hostSets) add(s *policy.Set) {
	if !slices.Contains(hs.offered, s) {
		hs.offered = append(hs.offered, s)
	}
}

// use records that a host's policy may match set s, and returns the
// rules of a flow that match it; none for no set.
func (hs *hostSets) use(s *policy.Set, dir, peerName, proto string, ports []int) []templates.Rule {
	if s == nil {
		return nil
	}
	hs.add(s)
	return templates.SetRules(s.Name, dir, peerName, proto, ports)
}

// byName finds an offered set.
func (hs *hostSets) byName(name string) *policy.Set {
	for _, s := range hs.offered {
		if s.Name == name {
			return s
		}
	}
	return nil
}
