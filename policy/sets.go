package policy

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// SetPrefix begins the name of every ipset fwpush makes. The sets whose
// names have it are fwpush's; the others belong to other software and are
// left alone.
const SetPrefix = "fwp-"

// MaxSetName is the longest set name ipset takes (IPSET_MAXNAMELEN, less
// its terminating NUL).
const MaxSetName = 31

// The set types fwpush makes: a set of addresses, and a set of networks.
const (
	HashIP  = "hash:ip"
	HashNet = "hash:net"
)

// The families of a set, as ipset names them.
const (
	Inet  = "inet"
	Inet6 = "inet6"
)

// defaultMaxElem is the most members ipset lets a hash set hold unless it
// is created with maxelem.
const defaultMaxElem = 65536

// Set is an ipset, which rules match with "-m set --match-set NAME src"
// (or dst): a named set of addresses (hash:ip) or of networks (hash:net),
// of one family. Sets are shared between the policies that name them:
// they are read, never changed, once made.
type Set struct {
	Name   string
	Type   string // HashIP or HashNet for the sets fwpush makes
	Family string // Inet or Inet6
	// Options are the create options that change what the set does, in
	// the order ipset prints them ("maxelem 131072", "timeout 300",
	// "counters"); "" for a set made with the defaults. The options that
	// only size the hash (hashsize, bucketsize, initval) are not kept.
	Options string
	// Members are sorted and distinct. A hash:ip member is one address (a
	// /32 or a /128).
	Members []netip.Prefix
	// Other lists, sorted, the entries a live set holds that fwpush does
	// not read: every entry of a set of another type, and entries with
	// options of their own ("198.51.100.0/24 nomatch", "... timeout 60").
	// fwpush never writes them: in one of its own sets they are drift.
	Other []string
}

// NewSet makes a set of members, all of family (Inet or Inet6): hash:ip
// when every member is one address, hash:net when one of them is a
// network. Members are masked, sorted and made distinct; a set too large
// for ipset's default maxelem gets a larger one.
func NewSet(name, family string, members []netip.Prefix) *Set {
	ms := make([]netip.Prefix, len(members))
	typ := HashIP
	for i, m := range members {
		ms[i] = m.Masked()
		if !m.IsSingleIP() {
			typ = HashNet
		}
	}
	slices.SortFunc(ms, netip.Prefix.Compare)
	ms = slices.Compact(ms)
	s := &Set{Name: name, Type: typ, Family: family, Members: slices.Clip(ms)}
	if len(ms) > defaultMaxElem {
		s.Options = "maxelem " + strconv.Itoa(maxElem(len(ms)))
	}
	return s
}

// maxElem is the maxelem of a set of n members: the next power of two.
func maxElem(n int) int {
	m := defaultMaxElem
	for m < n {
		m *= 2
	}
	return m
}

// Contains reports whether the set holds a (a hash:net set, a network
// holding a). An address of the other family is never in a set.
func (s *Set) Contains(a netip.Addr) bool {
	if !a.IsValid() || a.Is4() != (s.Family == Inet) {
		return false
	}
	if s.Type == HashIP {
		_, ok := slices.BinarySearchFunc(s.Members, a, func(m netip.Prefix, a netip.Addr) int { return m.Addr().Compare(a) })
		return ok
	}
	return slices.ContainsFunc(s.Members, func(m netip.Prefix) bool { return m.Contains(a) })
}

// member is how ipset prints a member: an address without its /32 or
// /128, a network as a CIDR.
func member(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// createLine is a set's create line, without "create " and without -exist.
func (s *Set) createLine() string {
	line := s.Name + " " + s.Type
	if s.Family != "" {
		line += " family " + s.Family
	}
	if s.Options != "" {
		line += " " + s.Options
	}
	return line
}

// RestoreSets renders sets as an `ipset restore` document: each set
// created (-exist: an identical set already there is no error) and its
// members added, sets in the order given, members sorted. It is nil for no
// sets.
func RestoreSets(sets []*Set) []byte {
	if len(sets) == 0 {
		return nil
	}
	var b strings.Builder
	for _, s := range sets {
		b.WriteString("create " + s.createLine() + " -exist\n")
		for _, m := range s.Members {
			b.WriteString("add " + s.Name + " " + member(m) + "\n")
		}
	}
	return []byte(b.String())
}

// DeclareSets renders the create lines of RestoreSets only: what a
// document of rules that match the sets needs in order to load, without
// the members.
func DeclareSets(sets []*Set) []byte {
	if len(sets) == 0 {
		return nil
	}
	var b strings.Builder
	for _, s := range sets {
		b.WriteString("create " + s.createLine() + " -exist\n")
	}
	return []byte(b.String())
}

// CanonicalSets prints sets the way `ipset save` does, without what
// changes from one save to the next or from one kernel to another: sets
// sorted by name, members sorted, the create options that only size the
// hash left out. A live set (ParseSets of what ipset save printed) and the
// set fwpush renders have the same canonical form when they hold the same.
func CanonicalSets(sets []*Set) string {
	sorted := slices.SortedFunc(slices.Values(sets), func(a, b *Set) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for _, s := range sorted {
		b.WriteString("create " + s.createLine() + "\n")
		for _, m := range s.Members {
			b.WriteString("add " + s.Name + " " + member(m) + "\n")
		}
		for _, o := range s.Other {
			b.WriteString("add " + s.Name + " " + o + "\n")
		}
	}
	return b.String()
}

// sizing are the create options that size a hash and say nothing of what
// it holds: ipset picks and prints them (initval at random).
var sizing = []string{"hashsize", "bucketsize", "initval"}

// valued are the create options ipset prints with a value.
var valued = []string{"family", "hashsize", "maxelem", "bucketsize", "initval", "timeout", "netmask", "markmask", "size", "range"}

// ParseSets reads what `ipset save` prints (or an `ipset restore`
// document of create and add lines, as RestoreSets writes), into sets in
// the order they are created. Blank lines and # comments are skipped; any
// other command is an error, as is an add to a set not created before it.
func ParseSets(text string) ([]*Set, error) {
	var sets []*Set
	byName := map[string]*Set{}
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		n++
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "create":
			if len(f) < 3 {
				return nil, fmt.Errorf("line %d: %q: create needs a name and a type", n, line)
			}
			s, err := parseCreate(f[1], f[2], f[3:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if _, dup := byName[s.Name]; dup {
				return nil, fmt.Errorf("line %d: set %s is created twice", n, s.Name)
			}
			byName[s.Name] = s
			sets = append(sets, s)
		case "add":
			if len(f) < 3 {
				return nil, fmt.Errorf("line %d: %q: add needs a set and an entry", n, line)
			}
			s, ok := byName[f[1]]
			if !ok {
				return nil, fmt.Errorf("line %d: add to set %s, which is not created before", n, f[1])
			}
			entry := slices.DeleteFunc(f[2:], func(t string) bool { return t == "-exist" })
			if p, ok := parseMember(s, entry); ok {
				s.Members = append(s.Members, p)
			} else {
				s.Other = append(s.Other, strings.Join(entry, " "))
			}
		default:
			return nil, fmt.Errorf("line %d: %q: only create and add lines are read", n, line)
		}
	}
	for _, s := range sets {
		slices.SortFunc(s.Members, netip.Prefix.Compare)
		s.Members = slices.Compact(s.Members)
		slices.Sort(s.Other)
		s.Other = slices.Compact(s.Other)
	}
	return sets, nil
}

func parseCreate(name, typ string, opts []string) (*Set, error) {
	if name == "" || len(name) > MaxSetName {
		return nil, fmt.Errorf("set name %q: at most %d characters", name, MaxSetName)
	}
	s := &Set{Name: name, Type: typ}
	var kept []string
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		if o == "-exist" {
			continue
		}
		if !slices.Contains(valued, o) {
			kept = append(kept, o)
			continue
		}
		if i+1 >= len(opts) {
			return nil, fmt.Errorf("set %s: %s needs a value", name, o)
		}
		v := opts[i+1]
		i++
		switch {
		case o == "family":
			if v != Inet && v != Inet6 {
				return nil, fmt.Errorf("set %s: family %q is neither inet nor inet6", name, v)
			}
			s.Family = v
		case slices.Contains(sizing, o):
		case o == "maxelem" && v == strconv.Itoa(defaultMaxElem):
		default:
			kept = append(kept, o, v)
		}
	}
	if s.Family == "" && strings.HasPrefix(typ, "hash:") {
		s.Family = Inet // ipset's default
	}
	s.Options = strings.Join(kept, " ")
	return s, nil
}

// parseMember reads an entry of a hash:ip or hash:net set of the set's
// family, with no option of its own; ok is false for any other entry.
func parseMember(s *Set, entry []string) (netip.Prefix, bool) {
	if len(entry) != 1 || s.Type != HashIP && s.Type != HashNet {
		return netip.Prefix{}, false
	}
	p, err := parsePrefix(entry[0])
	if err != nil || p.Addr().Is4() != (s.Family == Inet) || s.Type == HashIP && !p.IsSingleIP() {
		return netip.Prefix{}, false
	}
	return p, true
}

// Owned returns the sets whose names begin with SetPrefix: fwpush's own.
func Owned(sets []*Set) []*Set {
	var out []*Set
	for _, s := range sets {
		if strings.HasPrefix(s.Name, SetPrefix) {
			out = append(out, s)
		}
	}
	return out
}

// SetChange is how a live set differs from the one wanted.
type SetChange struct {
	Name string
	// Create is set for a set wanted that is not there; Destroy for one
	// there that is not wanted; Recreate for one there whose type,
	// family or options differ from the wanted one's, which must then be
	// made again (a set's type and family never change).
	Create, Destroy, Recreate bool
	// Added and Removed are the members (as ipset prints them) the live
	// set lacks and those it has but should not, sorted. A set created
	// has every member added, one destroyed every member removed.
	Added, Removed []string
}

// DiffSets compares live sets with the ones wanted, by name: one change
// per set that differs, sorted by name; nil when they hold the same. Pass
// it the sets that are fwpush's (Owned): it destroys every live set that
// is not wanted.
func DiffSets(live, want []*Set) []SetChange {
	names := map[string][2]*Set{}
	for _, s := range live {
		e := names[s.Name]
		e[0] = s
		names[s.Name] = e
	}
	for _, s := range want {
		e := names[s.Name]
		e[1] = s
		names[s.Name] = e
	}
	var out []SetChange
	for _, name := range slices.Sorted(maps.Keys(names)) {
		l, w := names[name][0], names[name][1]
		c := SetChange{Name: name}
		switch {
		case l == nil:
			c.Create = true
		case w == nil:
			c.Destroy = true
		case l.Type != w.Type || l.Family != w.Family || l.Options != w.Options:
			c.Recreate = true
		}
		c.Added, c.Removed = diffMembers(entries(l), entries(w))
		if c.Create || c.Destroy || c.Recreate || len(c.Added) > 0 || len(c.Removed) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// entry is a member as it is compared: its text, and its place in the
// order members sort in (the order of addresses, then Other's text).
type entry struct {
	p    netip.Prefix
	text string
}

func compareEntries(a, b entry) int {
	return cmp.Or(cmp.Compare(boolInt(!a.p.IsValid()), boolInt(!b.p.IsValid())), a.p.Compare(b.p), strings.Compare(a.text, b.text))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// entries lists a set's members and Other entries in order; none for nil.
func entries(s *Set) []entry {
	if s == nil {
		return nil
	}
	out := make([]entry, 0, len(s.Members)+len(s.Other))
	for _, m := range s.Members {
		out = append(out, entry{p: m, text: member(m)})
	}
	for _, o := range s.Other {
		out = append(out, entry{text: o})
	}
	return out
}

// diffMembers walks two sorted lists of entries at once.
func diffMembers(live, want []entry) (added, removed []string) {
	i, j := 0, 0
	for i < len(live) || j < len(want) {
		c := 0
		switch {
		case i == len(live):
			c = 1
		case j == len(want):
			c = -1
		default:
			c = compareEntries(live[i], want[j])
		}
		switch {
		case c < 0:
			removed = append(removed, live[i].text)
			i++
		case c > 0:
			added = append(added, want[j].text)
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}
