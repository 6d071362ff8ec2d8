package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Defaults of the [digitalocean] table.
const (
	DefaultTokenEnv = "DIGITALOCEAN_TOKEN"
	DefaultEndpoint = "https://api.digitalocean.com"
)

// DigitalOcean is the [digitalocean] table: the droplets that carry one of
// its tags are hosts of the role the tag names, next to the hosts of the
// file. Reading them is left to package digitalocean; the inventory only
// says which.
type DigitalOcean struct {
	// TokenEnv names the environment variable that holds the API token:
	// the token itself is never written in the inventory.
	TokenEnv string
	// Endpoint is the API's base URL (another for a proxy or a test).
	Endpoint string
	// Roles maps a droplet tag to the role of the droplets that carry it.
	Roles map[string]string
	// Sites maps a region slug ("nyc1") to the site its droplets are in,
	// in an inventory with [sites]; nil without.
	Sites map[string]string
}

// Tags returns the tags of Roles, sorted.
func (d *DigitalOcean) Tags() []string { return slices.Sorted(maps.Keys(d.Roles)) }

type rawDigitalOcean struct {
	TokenEnv string            `toml:"token_env"`
	Roles    map[string]string `toml:"roles"`
	Endpoint string            `toml:"endpoint"`
	Sites    map[string]string `toml:"sites"`
}

// Found is a host that a source outside the inventory file reports, such
// as a droplet: Resolve validates it as it does a [hosts.NAME] table.
type Found struct {
	Name      string
	Role      string
	Site      string // "" in an inventory without [sites]
	PublicIP  netip.Addr
	PrivateIP netip.Addr
	PublicIP6 netip.Addr
	// Source says where it came from, in problems and in `fwpush hosts`:
	// "digitalocean droplet 1234 (tag app)".
	Source string
}

// File is an inventory decoded but not yet resolved: the hosts of its
// sources are still to be read. Decode makes it and Resolve completes it.
type File struct {
	// DigitalOcean is the [digitalocean] table; nil when there is none.
	DigitalOcean *DigitalOcean

	name     string
	raw      *rawFile
	v        *validator
	resolved bool
}

// Decode decodes an inventory and checks what its sources need before
// they are read. The error is an *Error: the file cannot be decoded, or
// its [digitalocean] table is wrong. Other problems are kept, and Resolve
// reports them with those it finds, all at once.
func Decode(name string, data []byte) (*File, error) {
	f, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(f.v.problems, func(p Problem) bool { return p.Key == "digitalocean" || strings.HasPrefix(p.Key, "digitalocean.") }) {
		return nil, f.v.err()
	}
	return f, nil
}

// Name is the name the file was decoded under.
func (f *File) Name() string { return f.name }

// Invalid returns an *Error of the file's: problems at key found while
// reading its sources, such as the token's variable being unset, one for
// each message.
func (f *File) Invalid(key string, msgs ...string) error {
	e := &Error{File: f.name}
	for _, m := range msgs {
		e.Problems = append(e.Problems, Problem{Line: lineOf(f.v.lines, key), Key: key, Msg: m})
	}
	return e
}

// Resolve adds the hosts the sources found to the file's own and
// validates the whole fleet, as Parse does a file: the error is an *Error
// with every problem, those of a found host naming its source. A name
// that both the file and a source use is an error, and so is one that
// two found hosts share. notes, things the source left out and why,
// become warnings at its table. A File is resolved once.
func (f *File) Resolve(found []Found, notes []string) (*Inventory, error) {
	if f.resolved {
		return nil, errors.New("inventory: " + f.name + " is already resolved")
	}
	f.resolved = true
	v := f.v
	raw := *f.raw
	raw.Hosts = maps.Clone(f.raw.Hosts)
	if raw.Hosts == nil {
		raw.Hosts = map[string]rawHost{}
	}
	v.found = map[string]Found{}
	for _, h := range found {
		key := "hosts." + h.Name
		if _, ok := f.raw.Hosts[h.Name]; ok {
			v.errorf(key, "%s is also the name of %s: rename one of them", h.Name, h.Source)
			continue
		}
		if prev, ok := v.found[h.Name]; ok {
			v.problems = append(v.problems, Problem{Key: key, Source: h.Source,
				Msg: fmt.Sprintf("%s has the same name: rename one of them", prev.Source)})
			continue
		}
		v.found[h.Name] = h
		raw.Hosts[h.Name] = rawHost{Role: h.Role, Site: h.Site, Source: h.Source,
			PublicIP: addrText(h.PublicIP), PrivateIP: addrText(h.PrivateIP), PublicIP6: addrText(h.PublicIP6)}
	}
	inv := v.build(f.name, &raw)
	for _, n := range notes {
		v.warnf("digitalocean", "%s", n)
	}
	inv.DigitalOcean = f.DigitalOcean
	inv.found = v.found
	return v.finish(inv)
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// hostOfKey tells which of the found hosts key ("hosts.NAME.private_ip")
// is about. Host names may hold dots: the longest that fits wins.
func hostOfKey(key string, found map[string]Found) (string, bool) {
	rest, ok := strings.CutPrefix(key, "hosts.")
	if !ok || len(found) == 0 {
		return "", false
	}
	best := ""
	for name := range found {
		if (rest == name || strings.HasPrefix(rest, name+".")) && len(name) > len(best) {
			best = name
		}
	}
	return best, best != ""
}

// Origin says where a host comes from: "FILE:LINE" for one written in the
// file, the source that reported it otherwise.
func (inv *Inventory) Origin(h *Host) string {
	if h.Source != "" {
		return h.Source
	}
	return fmt.Sprintf("%s:%d", inv.Path, inv.Line("hosts."+h.Name))
}

// digitalOcean checks the [digitalocean] table, if there is one.
func (v *validator) digitalOcean(raw *rawFile) *DigitalOcean {
	if !v.defined("digitalocean") {
		return nil
	}
	r := raw.DigitalOcean
	d := &DigitalOcean{
		TokenEnv: cmp.Or(r.TokenEnv, DefaultTokenEnv),
		Endpoint: cmp.Or(r.Endpoint, DefaultEndpoint),
		Roles:    r.Roles,
		Sites:    r.Sites,
	}
	if v.defined("digitalocean", "token_env") && !validEnvName(r.TokenEnv) {
		v.errorf("digitalocean.token_env", "%q is not an environment variable's name: name the variable that holds the API token (the token itself is never written here)", r.TokenEnv)
	}
	if v.defined("digitalocean", "endpoint") {
		v.endpoint("digitalocean.endpoint", r.Endpoint)
	}
	if len(r.Roles) == 0 {
		v.errorf("digitalocean.roles", "missing: map each droplet tag to the role of its droplets (roles = { app = \"app\" })")
	}
	for _, tag := range sortedKeys(r.Roles) {
		key := "digitalocean.roles." + tag
		if !validTag(tag) {
			v.errorf(key, "%q is not a DigitalOcean tag: letters, digits, ':', '-' and '_', at most 255 characters", tag)
		}
		if role := r.Roles[tag]; role == "" {
			v.errorf(key, "an empty role: name the role of the droplets tagged %q", tag)
		} else if _, ok := raw.Roles[role]; !ok {
			v.errorf(key, "role %q does not exist%s", role, knownList(" (roles: ", sortedKeys(raw.Roles), ")"))
		}
	}
	switch {
	case len(raw.Sites) > 0 && len(r.Sites) == 0:
		v.errorf("digitalocean.sites", "missing: with [sites], map each region the droplets are in to its site (sites = { nyc1 = \"nyc\" })")
	case len(raw.Sites) == 0 && v.defined("digitalocean", "sites"):
		v.errorf("digitalocean.sites", "the inventory has no [sites] to put droplets in: remove it, or declare the sites")
	}
	if len(raw.Sites) > 0 {
		for _, region := range sortedKeys(r.Sites) {
			key := "digitalocean.sites." + region
			if _, ok := raw.Sites[r.Sites[region]]; !ok {
				v.errorf(key, "site %q does not exist%s", r.Sites[region], knownList(" (sites: ", sortedKeys(raw.Sites), ")"))
			}
		}
	}
	return d
}

// endpoint checks the API's base URL: http or https, a host, and nothing
// that would carry a secret (user info) or be dropped (query, fragment).
func (v *validator) endpoint(key, s string) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		v.errorf(key, "%q is not an http or https URL (such as %q)", s, DefaultEndpoint)
	case u.User != nil:
		v.errorf(key, "a URL with a user or password: the token comes from token_env, never from the inventory")
	case u.RawQuery != "" || u.Fragment != "":
		v.errorf(key, "%q has a query or fragment: give the API's base URL (such as %q)", s, DefaultEndpoint)
	}
}

// validEnvName is the shape of a portable environment variable's name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validTag is the shape DigitalOcean gives tag names. It also keeps the
// tag safe in the query string godo writes it into as it is.
func validTag(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_", c) >= 0) {
			return false
		}
	}
	return true
}
