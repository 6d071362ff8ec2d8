package inventory

import (
	"fmt"
	"slices"
	"strings"
)

// A flow between sites: an allow entry whose source hosts are in another
// site than some of its destination hosts. The private network ends at the
// site, so such a flow travels over the internet, from the source's public
// address to the destination's, and both need one of the same family.

// crossSite checks the allow entries whose sources sit in another site
// than their destinations: every host at either end needs a public address
// of a family the other end has too. It warns, once per pair of sites,
// that the traffic crosses the internet unencrypted, unless each entry
// says cross_site = "ok"; and that cross_site has no effect on an entry
// that crosses no site. It records which public addresses the flows use.
func (v *validator) crossSite(inv *Inventory) {
	v.publicUsed = map[string]map[string]bool{}
	if !inv.HasSites() || slices.ContainsFunc(v.problems, func(p Problem) bool {
		return strings.HasPrefix(p.Key, "hosts.") && strings.HasSuffix(p.Key, ".site")
	}) {
		return // no sites, or hosts whose site is not known
	}
	type pair struct{ a, b string } // sites, a < b
	var pairs []pair
	unmarked := map[pair][]string{} // the entries that cross it, unmarked
	for _, r := range inv.Roles {
		for i := range r.Allow {
			a := &r.Allow[i]
			key := fmt.Sprintf("roles.%s.allow[%d]", r.Name, i)
			if a.FromRole == "" {
				if a.FromCIDR.IsValid() && a.CrossSiteOK {
					v.warnf(key+".cross_site", "a CIDR source is on the private network of each site: cross_site has no effect")
				}
				continue
			}
			e := crossing{inv: inv, from: a.FromRole, to: r.Name}
			for _, dst := range inv.HostsOf(r.Name) {
				for _, src := range inv.HostsOf(a.FromRole) {
					if src == dst || src.Site == dst.Site {
						continue
					}
					e.add(src, dst)
					if v.publicUsed[src.Name] == nil {
						v.publicUsed[src.Name] = map[string]bool{}
					}
					if v.publicUsed[dst.Name] == nil {
						v.publicUsed[dst.Name] = map[string]bool{}
					}
					for _, f := range commonFamilies(src, dst) {
						v.publicUsed[src.Name][f] = true
						v.publicUsed[dst.Name][f] = true
					}
					p := pair{min(src.Site, dst.Site), max(src.Site, dst.Site)}
					if !slices.Contains(pairs, p) {
						pairs = append(pairs, p)
					}
					if !a.CrossSiteOK && !slices.Contains(unmarked[p], key) {
						unmarked[p] = append(unmarked[p], key)
					}
				}
			}
			if !e.crosses && a.CrossSiteOK {
				v.warnf(key+".cross_site", "no host of %s is in another site than a host of %s: cross_site has no effect", a.FromRole, r.Name)
			}
			e.report(v, key)
		}
	}
	for _, p := range pairs {
		entries := unmarked[p]
		if len(entries) == 0 {
			continue
		}
		slices.SortStableFunc(entries, func(a, b string) int { return lineOf(v.lines, a) - lineOf(v.lines, b) })
		msg := fmt.Sprintf("this flow crosses the internet between sites %s and %s, unencrypted unless the application encrypts it: once it does, or to accept that, mark the entry cross_site = \"ok\"", p.a, p.b)
		if len(entries) > 1 {
			msg += "; so do " + names(entries[1:])
		}
		v.warnf(entries[0], "%s", msg)
	}
}

// crossing gathers what is wrong with one allow entry's pairs of hosts in
// different sites, to report it grouped: by site, and hosts together.
type crossing struct {
	inv      *Inventory
	from, to string // roles
	crosses  bool
	// sources without a public address, by their site, and the sites
	// they must reach; destinations likewise.
	srcs, dsts         map[string][]string
	srcPeers, dstPeers map[string][]string
	srcSites, dstSites []string
	mismatch           []string // "src in site a and dst in site b"
}

func (e *crossing) add(src, dst *Host) {
	e.crosses = true
	if e.srcs == nil {
		e.srcs, e.dsts = map[string][]string{}, map[string][]string{}
		e.srcPeers, e.dstPeers = map[string][]string{}, map[string][]string{}
	}
	switch {
	case !src.HasPublic():
		if !slices.Contains(e.srcSites, src.Site) {
			e.srcSites = append(e.srcSites, src.Site)
		}
		e.srcs[src.Site] = appendNew(e.srcs[src.Site], src.Name)
		e.srcPeers[src.Site] = appendNew(e.srcPeers[src.Site], dst.Site)
	case !dst.HasPublic():
		if !slices.Contains(e.dstSites, dst.Site) {
			e.dstSites = append(e.dstSites, dst.Site)
		}
		e.dsts[dst.Site] = appendNew(e.dsts[dst.Site], dst.Name)
		e.dstPeers[dst.Site] = appendNew(e.dstPeers[dst.Site], src.Site)
	case len(commonFamilies(src, dst)) == 0:
		e.mismatch = append(e.mismatch, fmt.Sprintf("%s in site %s and %s in site %s", src.Name, src.Site, dst.Name, dst.Site))
	}
}

func (e *crossing) report(v *validator, key string) {
	for _, site := range e.srcSites {
		hosts, peers := e.srcs[site], e.srcPeers[site]
		slices.Sort(peers)
		v.errorf(key+".from", "%s in site %s %s no public address: the flow reaches %s in %s over the internet, from public addresses only (set public_ip or public_ip6)",
			names(hosts), site, hasHave(hosts), e.to, sitesList(peers))
	}
	for _, site := range e.dstSites {
		hosts, peers := e.dsts[site], e.dstPeers[site]
		slices.Sort(peers)
		v.errorf(key, "%s in site %s %s no public address: %s in %s reaches it over the internet, on public addresses only (set public_ip or public_ip6)",
			names(hosts), site, hasHave(hosts), e.from, sitesList(peers))
	}
	if len(e.mismatch) > 0 {
		more := ""
		if n := len(e.mismatch) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more pairs)", n)
		}
		v.errorf(key, "%s have no public address of the same family (public_ip, public_ip6)%s: the flow cannot cross the internet between them", e.mismatch[0], more)
	}
}

// commonFamilies are the keys of the public addresses both hosts have.
func commonFamilies(a, b *Host) []string {
	var out []string
	if a.PublicIP.IsValid() && b.PublicIP.IsValid() {
		out = append(out, "public_ip")
	}
	if a.PublicIP6.IsValid() && b.PublicIP6.IsValid() {
		out = append(out, "public_ip6")
	}
	return out
}

func appendNew(s []string, x string) []string {
	if slices.Contains(s, x) {
		return s
	}
	return append(s, x)
}

func hasHave(hosts []string) string {
	if len(hosts) == 1 {
		return "has"
	}
	return "have"
}

// sitesList names sites in prose: "site a", "sites a and b".
func sitesList(sites []string) string {
	if len(sites) == 1 {
		return "site " + sites[0]
	}
	return "sites " + names(sites)
}
