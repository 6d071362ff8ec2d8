// Package nft renders a host's policy for the nftables backend: one table
// of fwpush's own, table inet fwpush, that holds the IPv4 and the IPv6
// policy at once and is loaded with nft -f in one transaction. It reads
// the policy in its intermediate form, the iptables-restore documents the
// templates render (package policy parses them), and translates them
// rule by rule; a rule it cannot translate faithfully is refused, at its
// line. It also reads what `nft list table inet fwpush` prints back, into
// the same canonical form, so that the live table and the policy compare.
// It does no I/O.
//
// Every rule has two texts: the one loaded, and the one nft lists once it
// is loaded, which leaves out the dependencies it adds by itself (a
// "meta nfproto ipv4" before "meta l4proto icmp", say). The canonical form
// is made of the listed texts; the tests load every kind of rule the
// translator writes into a real kernel and check that nft lists it so.
package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/policy"
)

// The table fwpush owns on a host of the nftables backend.
const (
	Family = "inet"
	Name   = "fwpush"
	// Table is how nft's commands name it.
	Table = Family + " " + Name
)

// Ruleset is fwpush's table as the policy wants it: its sets and chains,
// in the order they are written (sets by name; the base chains input,
// forward and output; then the other chains by name).
type Ruleset struct {
	Sets   []*Set
	Chains []*Chain
}

// Set is a named set of the table: the addresses of a role's hosts.
type Set struct {
	Name     string
	Type     string // ipv4_addr or ipv6_addr
	Interval bool   // it holds networks: flags interval
	// Elements are sorted and distinct, written as nft lists them.
	Elements []string
}

// Chain is a chain of the table. A base chain has a Hook (input, forward
// or output) and a Policy (accept or drop); a chain that rules jump to has
// neither.
type Chain struct {
	Name   string
	Hook   string
	Policy string
	Rules  []Rule
}

// Rule is one rule of a chain.
type Rule struct {
	// Load is the rule as the document loads it; Show as nft lists it.
	Load, Show string
	// From are the lines of the iptables-restore documents it translates:
	// one, or two for a rule both families share.
	From []Origin
}

// Origin is a line of the IPv4 or IPv6 document of a policy.
type Origin struct {
	Family int // 4 or 6
	Line   int
}

// Error is a rule the translator refuses.
type Error struct {
	Origin
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("IPv%d line %d: %s", e.Family, e.Line, e.Msg) }

// hooks are iptables' built-in chains and the base chains they become.
var hooks = map[string]string{"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output"}

// hookOrder is the order base chains are written in.
var hookOrder = []string{"input", "forward", "output"}

// Translate renders the IPv4 and IPv6 filter tables of a policy (v4 and
// v6, as policy.Parse reads them) and the sets their rules match as one
// inet table. A rule of one family only matches packets of that family; a
// rule the two documents have in the same place is written once. It
// returns every rule it refuses, with no table, when there is one.
func Translate(v4, v6 *policy.Ruleset, sets []*policy.Set) (*Ruleset, []*Error) {
	t := &translator{sets: map[string]*policy.Set{}}
	for _, s := range sets {
		t.sets[s.Name] = s
	}
	docs := map[int]*policy.Ruleset{4: v4, 6: v6}
	var names []string // iptables' chain names, v4's order then v6's
	for _, family := range []int{4, 6} {
		for _, name := range docs[family].Order {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	rs := &Ruleset{}
	used := map[string]bool{}
	for _, name := range names {
		c := &Chain{Name: chainName(name), Hook: hooks[name]}
		if c.Hook == "" {
			if err := userChain(name); err != "" {
				t.refuse(docs, name, err)
				continue
			}
		}
		var translated [2][]xrule
		policies := [2]string{"accept", "accept"} // a chain a family does not declare lets its packets through
		for i, family := range []int{4, 6} {
			ch, ok := docs[family].Chains[name]
			if !ok {
				continue
			}
			if ch.Policy == "DROP" {
				policies[i] = "drop"
			}
			for _, r := range ch.Rules {
				x, err := t.rule(family, r, docs[family])
				if err != "" {
					t.errs = append(t.errs, &Error{Origin{family, r.Line}, err})
					continue
				}
				for _, s := range x.sets {
					used[s] = true
				}
				translated[i] = append(translated[i], x)
			}
		}
		c.Rules = merge(translated[0], translated[1])
		if c.Hook != "" {
			c.Policy = policies[0]
			if policies[0] != policies[1] {
				// One family accepts what falls off the chain, the other
				// drops it: the chain drops, but for that family.
				c.Policy = "drop"
				f := "ipv4"
				if policies[1] == "accept" {
					f = "ipv6"
				}
				last := "meta nfproto " + f + " accept"
				c.Rules = append(c.Rules, Rule{Load: last, Show: last})
			}
		}
		rs.Chains = append(rs.Chains, c)
	}
	if len(t.errs) > 0 {
		slices.SortFunc(t.errs, func(a, b *Error) int { return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Line, b.Line)) })
		return nil, t.errs
	}
	slices.SortStableFunc(rs.Chains, compareChains)
	for _, s := range sets {
		if used[s.Name] {
			rs.Sets = append(rs.Sets, newSet(s))
		}
	}
	slices.SortFunc(rs.Sets, func(a, b *Set) int { return strings.Compare(a.Name, b.Name) })
	return rs, nil
}

// compareChains orders chains as they are written: the base chains in
// hook order, then the others by name.
func compareChains(a, b *Chain) int {
	ia, ib := slices.Index(hookOrder, a.Hook), slices.Index(hookOrder, b.Hook)
	if a.Hook == "" {
		ia = len(hookOrder)
	}
	if b.Hook == "" {
		ib = len(hookOrder)
	}
	return cmp.Or(cmp.Compare(ia, ib), strings.Compare(a.Name, b.Name))
}

// chainName is the nft name of an iptables chain: the base chains
// lowercase, as nft's own examples name them, the others as they are.
func chainName(name string) string {
	if h, ok := hooks[name]; ok {
		return h
	}
	return name
}

// userChain says what is wrong with the name of a user chain, or "".
func userChain(name string) string {
	if slices.Contains(hookOrder, name) {
		return fmt.Sprintf("chain %s: its base chains are named input, forward and output: rename the chain", name)
	}
	if !identifier(name) {
		return fmt.Sprintf("chain %s: nft takes chain names of letters, digits, '_', '-', '.' and '/' that start with a letter", name)
	}
	return ""
}

// identifier tells whether nft takes s as a name, unquoted.
func identifier(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && !strings.ContainsRune("_-./", rune(c)) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// refuse refuses a chain at every line that declares it.
func (t *translator) refuse(docs map[int]*policy.Ruleset, name, msg string) {
	for _, family := range []int{4, 6} {
		if ch, ok := docs[family].Chains[name]; ok {
			line := 0
			if len(ch.Rules) > 0 {
				line = ch.Rules[0].Line
			}
			t.errs = append(t.errs, &Error{Origin{family, line}, msg})
		}
	}
}

// SetName is the nft name of a set fwpush makes: its ipset name, but for
// the '~' of a shortened one, which nft does not take in a name, made a
// '/', which no role name has either.
func SetName(name string) string { return strings.ReplaceAll(name, "~", "/") }

// newSet is the named set of a policy's set.
func newSet(s *policy.Set) *Set {
	out := &Set{Name: SetName(s.Name), Type: "ipv4_addr", Interval: s.Type == policy.HashNet}
	if s.Family == policy.Inet6 {
		out.Type = "ipv6_addr"
	}
	members := s.Members
	if out.Interval {
		// A network inside another one of the set adds nothing to it,
		// and nft refuses overlapping intervals.
		members = nil
		for _, m := range s.Members {
			if !slices.ContainsFunc(s.Members, func(o netip.Prefix) bool { return o != m && o.Bits() < m.Bits() && o.Contains(m.Addr()) }) {
				members = append(members, m)
			}
		}
	}
	for _, m := range members {
		out.Elements = append(out.Elements, addrText(m))
	}
	return out
}

// addrText writes an address or network as nft lists it: an address
// without its /32 or /128.
func addrText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.Masked().String()
}

// merge interleaves the rules of the two families of a chain, keeping
// each family's order: the longest run of rules they have in common, in
// the same order, is written once for both; every other rule is made to
// match its own family only. A packet of one family then meets exactly
// the rules of its own document, in their order.
func merge(r4, r6 []xrule) []Rule {
	n, m := len(r4), len(r6)
	if n*m > 4<<20 {
		// Too many to compare: each family on its own.
		out := make([]Rule, 0, n+m)
		for _, r := range r4 {
			out = append(out, r.only(4))
		}
		for _, r := range r6 {
			out = append(out, r.only(6))
		}
		return out
	}
	// lcs[i][j] is the length of the longest common subsequence of
	// r4[i:] and r6[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if same(r4[i], r6[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []Rule
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && same(r4[i], r6[j]):
			text := r4[i].text()
			out = append(out, Rule{Load: text, Show: text, From: []Origin{{4, r4[i].line}, {6, r6[j].line}}})
			i++
			j++
		case j == m || i < n && lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, r4[i].only(4))
			i++
		default:
			out = append(out, r6[j].only(6))
			j++
		}
	}
	return out
}

// same tells whether two rules of the two families are one for both. A
// rule whose matches restrict the family is never shared: a rule of the
// IPv6 document with an ICMP (not ICMPv6) match would say the same, but
// it is another rule.
func same(a, b xrule) bool {
	return !a.family && !b.family && a.text() == b.text()
}

// xrule is a rule translated for both families: the text that matches
// what it matches, whichever the packet's family, and what it takes to
// make it match one family only.
type xrule struct {
	line    int
	matches []string
	verdict string // "accept", "jump X", ...; "" for none
	// reject is set for a reject to ICMP's port unreachable, the
	// default: "reject" in a rule of both families, with the ICMP of its
	// own family in a rule of one.
	reject  bool
	comment string // "" for none
	// family is set when the matches themselves restrict the family
	// (addresses, ICMP types, sets).
	family bool
	// hides is set when nft lists the rule without the "meta nfproto"
	// that makes it match one family: one whose protocol or reject
	// depends on the family.
	hides bool
	sets  []string // the sets it matches, by ipset name
}

func (x xrule) text() string { return x.write("") }

// write writes the rule with verdict, or with its own.
func (x xrule) write(reject string) string {
	parts := slices.Clip(x.matches)
	switch {
	case x.reject && reject != "":
		parts = append(parts, reject)
	case x.reject:
		parts = append(parts, "reject")
	case x.verdict != "":
		parts = append(parts, x.verdict)
	}
	if len(parts) == 0 {
		parts = append(parts, "counter") // a rule that only counts
	}
	if x.comment != "" {
		parts = append(parts, "comment "+quoteString(x.comment))
	}
	return strings.Join(parts, " ")
}

// only is the rule made to match packets of one family only.
func (x xrule) only(family int) Rule {
	from := []Origin{{family, x.line}}
	switch {
	case x.reject:
		// A reject with the ICMP of a family matches that family only
		// (nft lists a bare reject of a rule of one family so).
		t := x.write("reject with icmp port-unreachable")
		if family == 6 {
			t = x.write("reject with icmpv6 port-unreachable")
		}
		return Rule{Load: t, Show: t, From: from}
	case x.family:
		t := x.text()
		return Rule{Load: t, Show: t, From: from}
	}
	load := "meta nfproto ipv" + strconv.Itoa(family) + " " + x.text()
	show := load
	if x.hides {
		show = x.text()
	}
	return Rule{Load: load, Show: show, From: from}
}

// quoteString quotes a string nft takes (see safeString).
func quoteString(s string) string { return `"` + s + `"` }

// safeString tells whether nft takes s between double quotes as it is:
// no quote, backslash or control character.
func safeString(s string) bool {
	for _, c := range s {
		if c == '"' || c == '\\' || c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

type translator struct {
	sets map[string]*policy.Set
	errs []*Error
}
