package inventory

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Select returns the hosts a host pattern names, in inventory order. The
// pattern follows Ansible's habits (its --limit and hosts: patterns):
//
//   - terms are separated by ',' or ':' ("db,haproxy-www", "db:haproxy-www");
//   - a term names hosts, roles or sites: a role or a site stands for all
//     its hosts, and a term that is several of these selects them all;
//   - a term may be a glob ('*', '?', '[a-z]'): "mysql-*" or "db*";
//     "all" and "*" are every host;
//   - "!term" excludes what term matches, "&term" keeps only what it
//     matches.
//
// As in Ansible, the order of the terms does not matter: the plain terms
// are united first, then every '&' term intersects, then every '!' term
// removes. A pattern of only '!' and '&' terms starts from every host
// ("!tunnel-1" is every host but the tunnel).
//
// Unlike Ansible, which warns and goes on, a term that matches no host and
// no role is an error naming it, and the name it is likely a typo of (a
// typo in an exclusion must not widen a push), and so is a pattern that
// selects no host at all. An empty pattern
// selects every host. Ansible's regular expressions ("~...") and subscripts
// ("db[0]") are not supported.
func (inv *Inventory) Select(pattern string) ([]*Host, error) {
	if strings.TrimSpace(pattern) == "" {
		return inv.Hosts, nil
	}
	union, intersect, exclude := terms(pattern)
	var errs []error
	if len(union) == 0 {
		union = []string{"all"}
	}

	// match returns the set of hosts term matches, or records why none.
	match := func(term, written string) map[*Host]bool {
		set, err := inv.match(term)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%q: %w", written, err))
		case len(set) == 0:
			msg := fmt.Sprintf("%q matches no %s", written, inv.nameKinds())
			if near := inv.closestName(term); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", strings.TrimSuffix(written, term)+near)
			}
			errs = append(errs, errors.New(msg))
		}
		return set
	}
	selected := map[*Host]bool{}
	for _, term := range union {
		for h := range match(term, term) {
			selected[h] = true
		}
	}
	for _, term := range intersect {
		keep := match(term, "&"+term)
		for h := range selected {
			if !keep[h] {
				delete(selected, h)
			}
		}
	}
	for _, term := range exclude {
		for h := range match(term, "!"+term) {
			delete(selected, h)
		}
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return nil, errors.New(strings.Join(msgs, "; ")) // one line
	}
	var out []*Host
	for _, h := range inv.Hosts {
		if selected[h] {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q selects no host", pattern)
	}
	return out, nil
}

// Excluded returns the names of the hosts that pattern's '!' terms leave
// out, in inventory order: the hosts an operator told fwpush to keep away
// from (a bastion that is down, say), whose probes check leaves out too.
// Terms that match nothing are Select's errors, not reported here.
func (inv *Inventory) Excluded(pattern string) []string {
	_, _, exclude := terms(pattern)
	out := map[*Host]bool{}
	for _, term := range exclude {
		set, _ := inv.match(term)
		for h := range set {
			out[h] = true
		}
	}
	var names []string
	for _, h := range inv.Hosts {
		if out[h] {
			names = append(names, h.Name)
		}
	}
	return names
}

// terms splits a pattern into its plain, '&' and '!' terms, without their
// prefixes.
func terms(pattern string) (union, intersect, exclude []string) {
	for _, term := range strings.FieldsFunc(pattern, func(r rune) bool { return r == ',' || r == ':' }) {
		term = strings.TrimSpace(term)
		switch {
		case term == "":
			continue // "db,", as Ansible allows
		case strings.HasPrefix(term, "!"):
			exclude = append(exclude, term[1:])
		case strings.HasPrefix(term, "&"):
			intersect = append(intersect, term[1:])
		default:
			union = append(union, term)
		}
	}
	return union, intersect, exclude
}

// nameKinds says what a --limit term can name, for messages.
func (inv *Inventory) nameKinds() string {
	if inv.HasSites() {
		return "host, role or site"
	}
	return "host or role"
}

// closestName returns the host, role or site name a term that matches
// nothing is likely a typo of, if any; "" for a glob, which is no typo of
// one name.
func (inv *Inventory) closestName(term string) string {
	if strings.ContainsAny(term, "*?[") {
		return ""
	}
	var names []string
	for _, r := range inv.Roles {
		names = append(names, r.Name)
	}
	if inv.HasSites() {
		for _, s := range inv.Sites {
			names = append(names, s.Name)
		}
	}
	for _, h := range inv.Hosts {
		names = append(names, h.Name)
	}
	// A short name is a few edits away from many others.
	return closest(term, names, min(2, len(term)/2))
}

// match returns the hosts one term (without its '!' or '&') matches: by
// host, role or site name, exactly or as a glob.
func (inv *Inventory) match(term string) (map[*Host]bool, error) {
	if term == "" {
		return nil, errors.New("an empty name")
	}
	if _, err := path.Match(term, ""); err != nil {
		return nil, fmt.Errorf("not a valid glob: %w", err)
	}
	set := map[*Host]bool{}
	for _, h := range inv.Hosts {
		// Names hold no '/' and no glob characters: path.Match is exact
		// for a plain name. Its error was checked above.
		byName, _ := path.Match(term, h.Name)
		byRole, _ := path.Match(term, h.Role)
		bySite := false
		if h.Site != "" {
			bySite, _ = path.Match(term, h.Site)
		}
		if term == "all" || byName || byRole || bySite {
			set[h] = true
		}
	}
	return set, nil
}
