package inventory

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// BuiltinTemplates are the template names that need no file.
var BuiltinTemplates = []string{"private", "public", "tunnel"}

// TemplateExt ends the name of every user template file: a role's
// template is never a file that was not written to be one.
const TemplateExt = ".tmpl"

type validator struct {
	file     string
	lines    map[string]int
	md       toml.MetaData
	problems []Problem
	warnings []Problem

	// tunnelKeys are where each site's bastions are named, by site
	// name and position: "ssh.tunnel", "sites.a.tunnel[1]".
	tunnelKeys map[string][]string
	// publicUsed marks the public addresses ("public_ip", "public_ip6")
	// of hosts that flows between sites use, by host name.
	publicUsed map[string]map[string]bool
	// found are the hosts a source outside the file reported, by name:
	// a problem of theirs names where they came from, not a line.
	found map[string]Found
}

// errorf records a problem at key.
func (v *validator) errorf(key, format string, args ...any) {
	v.problems = append(v.problems, v.at(key, fmt.Sprintf(format, args...)))
}

// warnf records a warning at key.
func (v *validator) warnf(key, format string, args ...any) {
	p := v.at(key, fmt.Sprintf(format, args...))
	p.Warning = true
	v.warnings = append(v.warnings, p)
}

// at makes a problem at key: with its line, or, for a key of a host that
// is not written in the file, with where the host came from.
func (v *validator) at(key, msg string) Problem {
	if name, ok := hostOfKey(key, v.found); ok {
		return Problem{Key: key, Msg: msg, Source: v.found[name].Source}
	}
	return Problem{Line: lineOf(v.lines, key), Key: key, Msg: msg}
}

// lineOf looks the line of key up, or that of its nearest enclosing table
// when the key itself is not written (a missing required key).
func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (v *validator) defined(key ...string) bool { return v.md.IsDefined(key...) }

// reported tells whether a problem has been recorded at key.
func (v *validator) reported(key string) bool {
	return slices.ContainsFunc(v.problems, func(p Problem) bool { return p.Key == key })
}

// reportedUnder tells whether a problem has been recorded at key or at an
// element of it (key[1]).
func (v *validator) reportedUnder(key string) bool {
	return slices.ContainsFunc(v.problems, func(p Problem) bool { return p.Key == key || strings.HasPrefix(p.Key, key+"[") })
}

func (v *validator) build(name string, raw *rawFile) *Inventory {
	inv := &Inventory{Path: name}
	inv.SSH = v.ssh(&raw.SSH)
	inv.Interfaces = Interfaces{
		Public:  v.iface("interfaces.public", raw.Interfaces.Public, DefaultPublicIface),
		Private: v.iface("interfaces.private", raw.Interfaces.Private, DefaultPrivateIface),
	}
	if inv.Interfaces.Public == inv.Interfaces.Private {
		v.errorf("interfaces", "public and private interface are both %q: they must differ", inv.Interfaces.Public)
	}

	inv.Firewall.Preserve = v.preserve("firewall.preserve", raw.Firewall.Preserve, nil)
	inv.Firewall.Backend = v.backend("firewall.backend", raw.Firewall.Backend)
	for _, rn := range sortedKeys(raw.Roles) {
		r := v.role(rn, raw.Roles[rn])
		r.Backend = v.backend("roles."+rn+".backend", raw.Roles[rn].Backend)
		r.Preserve = v.preserve("roles."+rn+".preserve", raw.Roles[rn].Preserve, raw.Firewall.Preserve)
		inv.Roles = append(inv.Roles, r)
	}
	v.sites(inv, raw)
	for _, hn := range sortedKeys(raw.Hosts) {
		inv.Hosts = append(inv.Hosts, v.host(inv, hn, raw.Hosts[hn]))
	}
	switch {
	case len(inv.Hosts) > 0:
	case raw.DigitalOcean.Roles != nil:
		v.errorf("digitalocean.roles", "no hosts: no droplet carries one of these tags, and the file has no [hosts.NAME] table")
	default:
		v.errorf("hosts", "no hosts: add at least a [hosts.NAME] table for the tunnel host")
	}
	// Allow sources can only be checked once every role is known.
	for _, r := range inv.Roles {
		for i := range r.Allow {
			v.allowSource(inv, r, i)
		}
	}
	v.bastions(inv)
	v.duplicateIPs(inv)
	v.crossSite(inv)
	v.noEffect(inv)
	return inv
}

func (v *validator) ssh(raw *rawSSH) SSH {
	s := SSH{
		User:       cmp.Or(raw.User, DefaultUser),
		Port:       DefaultPort,
		Identity:   cmp.Or(raw.Identity, DefaultIdentity),
		KnownHosts: cmp.Or(raw.KnownHosts, DefaultKnownHosts),
		Parallel:   DefaultParallel,
		Given: Given{User: raw.User != "", Port: v.defined("ssh", "port"),
			Identity: raw.Identity != "", KnownHosts: raw.KnownHosts != ""},
	}
	var tunnelKeys []string
	s.Tunnels, tunnelKeys = v.names("ssh.tunnel", raw.Tunnel)
	v.tunnelKeys = map[string][]string{"": tunnelKeys}
	if len(s.Tunnels) > 0 {
		s.Tunnel = s.Tunnels[0]
	}
	if v.defined("ssh", "user") {
		v.user("ssh.user", raw.User)
	}
	if v.defined("ssh", "port") {
		s.Port = v.port("ssh.port", raw.Port)
	}
	if v.defined("ssh", "parallel") {
		s.Parallel = raw.Parallel
		if raw.Parallel < 1 || raw.Parallel > 1000 {
			v.errorf("ssh.parallel", "%d is out of range: hosts worked on at once must be 1 to 1000", raw.Parallel)
		}
	}
	timeout, ok1 := v.duration("ssh.timeout", raw.Timeout, DefaultTimeout, time.Second, MaxTimeout)
	rollback, ok2 := v.duration("ssh.rollback_after", raw.RollbackAfter, DefaultRollbackAfter, 5*time.Second, MaxRollbackAfter)
	s.Timeout, s.RollbackAfter = timeout, rollback
	// After the apply, fwpush must reach the host again over a fresh
	// connection, which may take a whole timeout, and confirm before the
	// host rolls back by itself: a guard that fires first undoes every
	// good apply. Half a timeout more leaves room for the apply to finish
	// and the confirm to run.
	if need := roundUp(timeout * 3 / 2); ok1 && ok2 && rollback < need {
		if raw.RollbackAfter != "" {
			v.errorf("ssh.rollback_after", "%s is not clearly longer than ssh.timeout (%s): after the apply fwpush may need a whole timeout to reach the host again and confirm before it rolls back; use at least %s",
				shortDuration(rollback), shortDuration(timeout), shortDuration(need))
		} else {
			v.errorf("ssh.timeout", "%s leaves no time to confirm before rollback_after (%s, the default) fires: after the apply fwpush may need a whole timeout to reach the host again; use at most %s, or set rollback_after to at least %s",
				shortDuration(timeout), shortDuration(rollback), shortDuration(rollback*2/3), shortDuration(need))
		}
	}
	s.Become = v.become("ssh.become", raw.Become)
	return s
}

// names reads a host name or a list of them at key (a tunnel), and the
// key each name is written at. It returns nil when there is none: the key
// is missing or empty, or its problem is recorded.
func (v *validator) names(key string, val any) (names, keys []string) {
	switch x := val.(type) {
	case nil:
		return nil, nil
	case string:
		if x == "" {
			return nil, nil
		}
		return []string{x}, []string{key}
	case []any:
		if len(x) == 0 {
			v.errorf(key, "an empty list names no host: name the bastions in order of preference")
			return nil, nil
		}
		for i, e := range x {
			ekey := fmt.Sprintf("%s[%d]", key, i)
			name, ok := e.(string)
			switch {
			case !ok:
				v.wrongType(ekey, "a string", e)
			case name == "":
				v.errorf(ekey, "an empty name: name a host")
			case slices.Contains(names, name):
				v.errorf(ekey, "%q is listed twice", name)
			default:
				names, keys = append(names, name), append(keys, ekey)
			}
		}
		return names, keys
	}
	v.wrongType(key, "a host name or a list of host names", val)
	return nil, nil
}

// sites reads [sites], or makes the one site of an inventory without it
// from [ssh] tunnel. Which hosts the bastions are is checked once the
// hosts are known (see bastions).
func (v *validator) sites(inv *Inventory, raw *rawFile) {
	if len(raw.Sites) == 0 {
		if v.defined("sites") {
			v.errorf("sites", "no site: add a [sites.NAME] table with the site's bastions (tunnel = \"NAME\"), or remove [sites]")
		}
		if len(inv.SSH.Tunnels) == 0 && !v.reportedUnder("ssh.tunnel") {
			v.errorf("ssh.tunnel", "missing: name the host every other host is reached through (tunnel = \"NAME\")")
		}
		inv.Sites = []*Site{{Tunnels: inv.SSH.Tunnels}}
		return
	}
	if raw.SSH.Tunnel != nil {
		v.errorf("ssh.tunnel", "with [sites], each site names its own bastions: move tunnel to [sites.NAME]")
	}
	inv.SSH.Tunnel, inv.SSH.Tunnels = "", nil
	for _, name := range sortedKeys(raw.Sites) {
		key := "sites." + name
		if !validName(name) {
			v.errorf(key, "invalid site name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters", name)
		}
		site := &Site{Name: name}
		site.Tunnels, v.tunnelKeys[name] = v.names(key+".tunnel", raw.Sites[name].Tunnel)
		if len(site.Tunnels) == 0 && !v.reportedUnder(key+".tunnel") {
			v.errorf(key+".tunnel", "missing: name the bastion the site's hosts are reached through (tunnel = \"NAME\", or a list in order of preference)")
		}
		inv.Sites = append(inv.Sites, site)
	}
}

// siteNames lists the declared sites, for messages.
func siteNames(inv *Inventory) []string {
	var out []string
	for _, s := range inv.Sites {
		if s.Name != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

// bastion reports whether some site names host name as a bastion.
func bastion(inv *Inventory, name string) bool {
	return slices.ContainsFunc(inv.Sites, func(s *Site) bool { return slices.Contains(s.Tunnels, name) })
}

// backend checks a backend key: one of Backends, or unset ("").
func (v *validator) backend(key, val string) string {
	if val != "" && !slices.Contains(Backends, val) {
		v.errorf(key, "%q is not a firewall backend: use %q (the default: the filter table, with iptables-restore) or %q (a table of fwpush's own, with nft)", val, IPTables, NFTables)
	}
	return val
}

// become checks a become key: "sudo", "none", or unset ("").
func (v *validator) become(key, val string) string {
	switch val {
	case "", BecomeSudo, BecomeNone:
	default:
		v.errorf(key, "%q is not a way to become root: use \"sudo\" (the default for a user other than root) or \"none\" (the login user has root's rights)", val)
	}
	return val
}

func (v *validator) host(inv *Inventory, name string, raw rawHost) *Host {
	key := "hosts." + name
	h := &Host{
		Name:         name,
		Role:         raw.Role,
		PublicIface:  inv.Interfaces.Public,
		PrivateIface: inv.Interfaces.Private,
		User:         inv.SSH.User,
		Port:         inv.SSH.Port,
		Given:        Given{User: inv.SSH.Given.User || raw.User != "", Port: inv.SSH.Given.Port || v.defined("hosts", name, "port")},
		Source:       raw.Source,
	}
	if !validName(name) {
		v.errorf(key, "invalid host name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters", name)
	}
	h.Site = raw.Site
	switch _, known := inv.Site(raw.Site); {
	case raw.Site == "" && inv.HasSites():
		v.errorf(key+".site", "missing: with [sites], every host names the site it is in%s", knownList(" (sites: ", siteNames(inv), ")"))
	case raw.Site != "" && !inv.HasSites():
		v.errorf(key+".site", "site %q does not exist: declare it with [sites.%s] and its bastions (tunnel = \"NAME\")", raw.Site, raw.Site)
	case !known:
		v.errorf(key+".site", "site %q does not exist%s", raw.Site, knownList(" (sites: ", siteNames(inv), ")"))
	}
	switch {
	case raw.Role == "":
		v.errorf(key+".role", "missing: every host needs a role")
	default:
		if _, ok := inv.Role(raw.Role); !ok {
			v.errorf(key+".role", "role %q does not exist%s", raw.Role, knownList(" (roles: ", roleNames(inv), ")"))
		}
	}
	h.PublicIP = v.addr(key+".public_ip", raw.PublicIP, 4)
	h.PrivateIP = v.addr(key+".private_ip", raw.PrivateIP, 4)
	h.PublicIP6 = v.addr(key+".public_ip6", raw.PublicIP6, 6)
	if raw.PublicIface != "" {
		h.PublicIface = v.iface(key+".public_iface", raw.PublicIface, "")
	}
	if raw.PrivateIface != "" {
		h.PrivateIface = v.iface(key+".private_iface", raw.PrivateIface, "")
	}
	// The same clash in [interfaces] is reported there, once.
	if h.PublicIface == h.PrivateIface && h.PublicIface != "" && (raw.PublicIface != "" || raw.PrivateIface != "") {
		ikey := key + ".private_iface"
		if raw.PrivateIface == "" {
			ikey = key + ".public_iface"
		}
		v.errorf(ikey, "public and private interface are both %q: they must differ", h.PublicIface)
	}
	if raw.User != "" {
		h.User = raw.User
		v.user(key+".user", raw.User)
	}
	if v.defined("hosts", name, "port") {
		h.Port = v.port(key+".port", raw.Port)
	}
	h.Become = cmp.Or(v.become(key+".become", raw.Become), inv.SSH.Become)
	h.Given.Become = h.Become != ""
	if h.Become == "" {
		h.Become = BecomeNone
		if h.User != "root" {
			h.Become = BecomeSudo
		}
	}
	h.GivenBackend = v.backend(key+".backend", raw.Backend)
	h.Backend = h.GivenBackend
	if r, ok := inv.Role(raw.Role); ok && h.Backend == "" {
		h.Backend = r.Backend
	}
	h.Backend = cmp.Or(h.Backend, inv.Firewall.Backend, IPTables)
	if !bastion(inv, name) && !h.PrivateIP.IsValid() && raw.PrivateIP == "" {
		v.errorf(key+".private_ip", "missing: hosts other than the tunnel are reached on their private IP")
	}
	return h
}

func (v *validator) role(name string, raw rawRole) *Role {
	key := "roles." + name
	r := &Role{Name: name, Template: raw.Template, LogDropped: raw.LogDropped}
	if !validName(name) {
		v.errorf(key, "invalid role name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters", name)
	}
	switch {
	case raw.Template == "":
		v.errorf(key+".template", "missing: use a built-in template (%s) or a path to a template file", strings.Join(BuiltinTemplates, ", "))
	case !IsBuiltin(raw.Template) && !strings.HasSuffix(raw.Template, TemplateExt):
		// Any other file would be read, and its lines quoted in errors.
		v.errorf(key+".template", "%q is neither a built-in template (%s) nor a template file, whose name ends in %s", raw.Template, strings.Join(BuiltinTemplates, ", "), TemplateExt)
	}
	r.PublicTCP = v.ports(key+".public_tcp", raw.PublicTCP)
	if raw.Template == "private" && len(raw.PublicTCP) > 0 {
		v.errorf(key+".public_tcp", "the private template opens nothing on the public interface: use template \"public\" to open public ports")
	}
	for i, a := range raw.Allow {
		akey := fmt.Sprintf("%s.allow[%d]", key, i)
		al := Allow{From: a.From}
		if a.From == "" {
			v.errorf(akey+".from", "missing: name a role or a CIDR")
		}
		if a.TCP != nil && len(a.TCP) == 0 {
			v.errorf(akey+".tcp", "an empty list opens nothing: leave tcp out to allow every TCP port, or list ports")
		}
		if a.UDP != nil && len(a.UDP) == 0 {
			v.errorf(akey+".udp", "an empty list opens nothing: leave udp out, or list ports")
		}
		al.TCP = v.ports(akey+".tcp", a.TCP)
		al.UDP = v.ports(akey+".udp", a.UDP)
		// No port list at all means every TCP port, as the tutorial's
		// whitelist of private servers does; a udp list alone opens only UDP.
		al.AllTCP = a.TCP == nil && a.UDP == nil
		switch a.CrossSite {
		case "":
		case "ok":
			al.CrossSiteOK = true
		default:
			v.errorf(akey+".cross_site", "%q is not a value cross_site takes: \"ok\" says that the flow may cross the internet between sites as it is", a.CrossSite)
		}
		r.Allow = append(r.Allow, al)
	}
	return r
}

func (v *validator) allowSource(inv *Inventory, r *Role, i int) {
	a := &r.Allow[i]
	if a.From == "" {
		return
	}
	key := fmt.Sprintf("roles.%s.allow[%d].from", r.Name, i)
	if _, ok := inv.Role(a.From); ok {
		a.FromRole = a.From
		return
	}
	// Role names have no '/': this was meant as a CIDR.
	p, err := netip.ParsePrefix(a.From)
	if err != nil && strings.Contains(a.From, "/") {
		v.errorf(key, "%q is not a valid CIDR (such as \"198.51.100.0/24\")", a.From)
		return
	}
	if err == nil {
		switch {
		case p.Bits() == 0:
			// Every source: on the private interface that is every other
			// tenant of a shared private network, which is what the
			// policy keeps out. (And iptables-save leaves "-s 0.0.0.0/0"
			// out, so the rule would never compare equal to the live one.)
			v.errorf(key, "%q allows every address, other tenants of the private network included: use public_tcp to open a port to the internet, or a narrower CIDR", a.From)
		case !p.Addr().Is4():
			v.errorf(key, "%q: only IPv4 sources exist on the private network", a.From)
		case p.Masked() != p:
			v.errorf(key, "%q has host bits set: did you mean %q?", a.From, p.Masked().String())
		default:
			a.FromCIDR = p
		}
		return
	}
	if ip, err := netip.ParseAddr(a.From); err == nil {
		if !ip.Is4() {
			v.errorf(key, "%q: only IPv4 sources exist on the private network", a.From)
			return
		}
		a.FromCIDR = netip.PrefixFrom(ip, 32)
		return
	}
	v.errorf(key, "%q is neither a role nor a CIDR%s", a.From, knownList(" (roles: ", roleNames(inv), ")"))
}

// bastions checks the hosts each site names as its bastions: they exist,
// are in that site, are reached from the internet on their public IP, and
// reach the site's other hosts from their private IP.
func (v *validator) bastions(inv *Inventory) {
	for _, site := range inv.Sites {
		for i, name := range site.Tunnels {
			key := v.tunnelKeys[site.Name][i]
			t, ok := inv.Host(name)
			switch {
			case !ok:
				v.errorf(key, "host %q does not exist: the tunnel must be one of [hosts]", name)
				continue
			case t.Site != site.Name:
				if !v.reported("hosts." + t.Name + ".site") {
					v.errorf(key, "host %q is in site %q: a site's bastions must be among its own hosts", name, t.Site)
				}
				continue
			}
			// An address that is written but invalid has been reported
			// already; an empty one is missing.
			if key := "hosts." + t.Name + ".public_ip"; !t.PublicIP.IsValid() && !v.reported(key) {
				v.errorf(key, "missing: the tunnel %q is reached on its public IP", t.Name)
			}
			if key := "hosts." + t.Name + ".private_ip"; !t.PrivateIP.IsValid() && !v.reported(key) && len(inv.HostsIn(site.Name)) > 1 {
				v.errorf(key, "missing: the other hosts accept SSH from the tunnel's private IP")
			}
		}
	}
}

func (v *validator) duplicateIPs(inv *Inventory) {
	seen := map[netip.Addr]string{}
	for _, h := range inv.Hosts {
		for _, f := range []struct {
			key string
			ip  netip.Addr
		}{{"public_ip", h.PublicIP}, {"private_ip", h.PrivateIP}, {"public_ip6", h.PublicIP6}} {
			if !f.ip.IsValid() {
				continue
			}
			key := "hosts." + h.Name + "." + f.key
			if prev, dup := seen[f.ip]; dup {
				v.errorf(key, "%s is already used by %s", f.ip, prev)
				continue
			}
			seen[f.ip] = key
		}
	}
}

func (v *validator) addr(key, s string, family int) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		v.errorf(key, "%q is not an IP address", s)
		return netip.Addr{}
	}
	if family == 4 && !ip.Is4() {
		hint := ""
		if strings.HasSuffix(key, ".public_ip") && !ip.Is4In6() {
			hint = ": put an IPv6 address in public_ip6"
		}
		v.errorf(key, "%q is not an IPv4 address%s", s, hint)
		return netip.Addr{}
	}
	if family == 6 && (!ip.Is6() || ip.Is4In6()) {
		v.errorf(key, "%q is not an IPv6 address", s)
		return netip.Addr{}
	}
	if ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		v.errorf(key, "%s cannot be a server's address", ip)
		return netip.Addr{}
	}
	return ip
}

func (v *validator) port(key string, p int) int {
	if p < 1 || p > 65535 {
		v.errorf(key, "port %d is out of range 1-65535", p)
	}
	return p
}

func (v *validator) ports(key string, ps []int) []int {
	if ps == nil {
		return nil
	}
	out := make([]int, 0, len(ps))
	for i, p := range ps {
		if p < 1 || p > 65535 {
			v.errorf(fmt.Sprintf("%s[%d]", key, i), "port %d is out of range 1-65535", p)
			continue
		}
		if slices.Contains(ps[:i], p) {
			v.warnf(fmt.Sprintf("%s[%d]", key, i), "port %d is listed twice", p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// duration parses a duration between least and most; ok is false when it
// is not valid (the problem is recorded).
func (v *validator) duration(key, s string, def, least, most time.Duration) (d time.Duration, ok bool) {
	if s == "" {
		return def, true
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.errorf(key, "%q is not a duration (such as \"10s\" or \"1m\")", s)
		return def, false
	}
	switch {
	case d < least:
		v.errorf(key, "%s is too short: at least %s", shortDuration(d), shortDuration(least))
		return d, false
	case d > most:
		v.errorf(key, "%s is too long: at most %s", shortDuration(d), shortDuration(most))
		return d, false
	}
	return d, true
}

// roundUp rounds a duration up to whole seconds.
func roundUp(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) }

// shortDuration writes a duration without the zero units Go adds: "2m",
// not "2m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// iface checks a Linux interface name as the kernel's dev_valid_name does,
// and also refuses characters that would need quoting in a ruleset.
func (v *validator) iface(key, s, def string) string {
	if s == "" {
		return def
	}
	if !ValidIface(s) {
		v.errorf(key, "%q is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)", s)
	}
	return s
}

// ValidIface reports whether s is a name Linux accepts for an interface
// and that can appear unquoted in an iptables ruleset.
func ValidIface(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("/:\"'#\\!+", c) >= 0 {
			return false
		}
	}
	return true
}

func (v *validator) user(key, s string) {
	if !validName(s) || strings.HasPrefix(s, "-") {
		v.errorf(key, "%q is not a valid user name", s)
	}
}

// validName is the shape of host and role names: they end up in file
// names, namespace names and report lines.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte("-_.", c) < 0) {
			return false
		}
	}
	return true
}

// IsBuiltin reports whether a role's template is one of the built-in ones.
func IsBuiltin(template string) bool { return slices.Contains(BuiltinTemplates, template) }

// TemplatePath returns where a user template lives: relative paths are
// relative to the inventory file.
func (inv *Inventory) TemplatePath(template string) string {
	if filepath.IsAbs(template) || inv.Path == "" {
		return template
	}
	return filepath.Join(filepath.Dir(inv.Path), template)
}

func roleNames(inv *Inventory) []string {
	var out []string
	for _, r := range inv.Roles {
		out = append(out, r.Name)
	}
	return out
}

func knownList(prefix string, names []string, suffix string) string {
	if len(names) == 0 {
		return ""
	}
	return prefix + strings.Join(names, ", ") + suffix
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
