// Package policy reads iptables-restore documents (the filter table) and
// answers questions about them: what a packet meets, and what a ruleset
// looks like once the noise iptables-save adds is taken away. fwpush uses it
// to prove offline that a rendered policy keeps SSH from the tunnel working,
// and to compare live rules with rendered ones. It does no I/O.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Ruleset is the filter table of an iptables-restore document.
type Ruleset struct {
	Chains map[string]*Chain
	// Order lists the chains in the order they were declared.
	Order []string
	// Sets are the ipsets the rules' set matches are evaluated against,
	// by name (see WithSets). A match on a set not here may or may not
	// match.
	Sets map[string]*Set
}

// WithSets gives the ruleset the sets its rules match against, and
// returns it.
func (rs *Ruleset) WithSets(sets []*Set) *Ruleset {
	rs.Sets = make(map[string]*Set, len(sets))
	for _, s := range sets {
		rs.Sets[s.Name] = s
	}
	return rs
}

// SetNames lists, sorted, the sets the rules match against.
func (rs *Ruleset) SetNames() []string {
	var out []string
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			for _, m := range r.SetMatches {
				out = append(out, m.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Chain is one chain and its rules. Policy is "-" for user chains.
type Chain struct {
	Name   string
	Policy string
	Rules  []Rule
}

// Rule is one parsed "-A CHAIN ..." line. Only what fwpush reasons about
// is kept; anything else makes the rule Opaque, and an opaque rule is
// treated as "may or may not match".
type Rule struct {
	Line     int
	Text     string
	Src, Dst match[netip.Prefix]
	In, Out  match[string]
	Proto    match[string]
	SPorts   match[[]portRange]
	DPorts   match[[]portRange]
	CtStates match[[]string]
	// SetMatches are the rule's "-m set --match-set NAME FLAGS".
	SetMatches []SetMatch
	// Target is ACCEPT, DROP, REJECT, RETURN, LOG or a user chain.
	Target string
	// Opaque is set when the rule has a match this package does not model.
	Opaque bool
}

type match[T any] struct {
	set bool
	neg bool
	v   T
}

type portRange struct{ lo, hi int }

// SetMatch is "-m set [!] --match-set NAME FLAGS": the packet's address
// named by the first of Flags ("src" or "dst") is in set NAME (or, with
// Neg, is not).
type SetMatch struct {
	Name  string
	Flags []string
	Neg   bool
}

// Parse reads the filter table of an iptables-restore document. Other
// tables are refused: fwpush manages the filter table only.
func Parse(text string) (*Ruleset, error) {
	rs := &Ruleset{Chains: map[string]*Chain{}}
	table, committed := "", false
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		n++
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if table != "" {
				return nil, fmt.Errorf("line %d: table %s starts before table %s is committed", n, line[1:], table)
			}
			table = line[1:]
			if table != "filter" {
				return nil, fmt.Errorf("line %d: table %q: fwpush manages the filter table only (nat, mangle and raw are never touched)", n, table)
			}
		case line == "COMMIT":
			if table == "" {
				return nil, fmt.Errorf("line %d: COMMIT outside a table", n)
			}
			table, committed = "", true
		case table == "":
			return nil, fmt.Errorf("line %d: %q outside a table (a document starts with *filter)", n, line)
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("line %d: malformed chain declaration %q", n, line)
			}
			if f[1] != "ACCEPT" && f[1] != "DROP" && f[1] != "-" {
				return nil, fmt.Errorf("line %d: chain %s: policy %q is none of ACCEPT, DROP and - (a user chain)", n, f[0], f[1])
			}
			if _, dup := rs.Chains[f[0]]; dup {
				return nil, fmt.Errorf("line %d: chain %s declared twice", n, f[0])
			}
			rs.Chains[f[0]] = &Chain{Name: f[0], Policy: f[1]}
			rs.Order = append(rs.Order, f[0])
		case strings.HasPrefix(line, "-F "):
			// A flush, as fwpush's --noflush documents start with.
			name := strings.TrimSpace(line[3:])
			c, ok := rs.Chains[name]
			if !ok {
				return nil, fmt.Errorf("line %d: chain %s is not declared", n, name)
			}
			c.Rules = nil
		case strings.HasPrefix(line, "-A "):
			r, chain, err := parseRule(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			c, ok := rs.Chains[chain]
			if !ok {
				return nil, fmt.Errorf("line %d: chain %s is not declared", n, chain)
			}
			r.Line = n
			c.Rules = append(c.Rules, r)
		default:
			return nil, fmt.Errorf("line %d: unsupported line %q (only chain declarations, -F and -A)", n, line)
		}
	}
	if table != "" {
		return nil, fmt.Errorf("table %s has no COMMIT", table)
	}
	if !committed {
		return nil, fmt.Errorf("no *filter table")
	}
	for _, name := range rs.Order {
		for _, r := range rs.Chains[name].Rules {
			if _, builtin := verdicts[r.Target]; !builtin && r.Target != "" && r.Target != "LOG" {
				if _, ok := rs.Chains[r.Target]; !ok {
					return nil, fmt.Errorf("line %d: jump to undeclared chain %s", r.Line, r.Target)
				}
			}
		}
	}
	return rs, nil
}

var verdicts = map[string]Verdict{"ACCEPT": Accept, "DROP": Drop, "REJECT": Drop, "RETURN": 0}

func parseRule(line string) (Rule, string, error) {
	toks, err := tokenize(line)
	if err != nil {
		return Rule{}, "", err
	}
	r := Rule{Text: line}
	chain := toks[1]
	neg := false
	arg := func(i int) (string, error) {
		if i+1 >= len(toks) {
			return "", fmt.Errorf("%s needs a value", toks[i])
		}
		return toks[i+1], nil
	}
	for i := 2; i < len(toks); i++ {
		t := toks[i]
		if t == "!" {
			neg = true
			continue
		}
		switch t {
		case "-s", "--source", "-d", "--destination":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			p, err := parsePrefix(v)
			if err != nil {
				return r, "", err
			}
			m := match[netip.Prefix]{set: true, neg: neg, v: p}
			if t == "-s" || t == "--source" {
				r.Src = m
			} else {
				r.Dst = m
			}
			i++
		case "-i", "--in-interface", "-o", "--out-interface":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			m := match[string]{set: true, neg: neg, v: v}
			if t == "-i" || t == "--in-interface" {
				r.In = m
			} else {
				r.Out = m
			}
			i++
		case "-p", "--protocol":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			r.Proto = match[string]{set: true, neg: neg, v: v}
			i++
		case "-m", "--match":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			switch v {
			case "tcp", "udp", "multiport", "conntrack", "state", "comment", "icmp", "icmp6", "set":
			default:
				r.Opaque = true // limit, recent, ...: we cannot tell
			}
			i++
		case "--match-set":
			if i+2 >= len(toks) {
				return r, "", fmt.Errorf("--match-set needs a set name and src or dst")
			}
			flags := strings.Split(toks[i+2], ",")
			for _, f := range flags {
				if f != "src" && f != "dst" {
					return r, "", fmt.Errorf("--match-set %s: flag %q is neither src nor dst", toks[i+1], f)
				}
			}
			r.SetMatches = append(r.SetMatches, SetMatch{Name: toks[i+1], Flags: flags, Neg: neg})
			i += 2
		case "--dport", "--destination-port", "--sport", "--source-port", "--dports", "--destination-ports", "--sports", "--source-ports":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			pr, err := parsePorts(v)
			if err != nil {
				return r, "", err
			}
			m := match[[]portRange]{set: true, neg: neg, v: pr}
			if strings.HasPrefix(t, "--d") {
				r.DPorts = m
			} else {
				r.SPorts = m
			}
			i++
		case "--ctstate", "--state":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			r.CtStates = match[[]string]{set: true, neg: neg, v: strings.Split(v, ",")}
			i++
		case "--icmp-type", "--icmpv6-type":
			// ICMP types never decide whether SSH gets through: an ICMP
			// rule already fails to match a TCP packet on its protocol.
			i++
		case "--comment":
			i++
		case "-j", "--jump":
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			r.Target = v
			return r, chain, nil // target options follow; they never change the verdict
		case "-g", "--goto":
			r.Opaque = true
			v, err := arg(i)
			if err != nil {
				return r, "", err
			}
			r.Target = v
			return r, chain, nil
		default:
			r.Opaque = true
		}
		neg = false
	}
	return r, chain, nil
}

// Fields splits a rule line ("-A INPUT -p tcp ...") into its words as
// iptables-restore does, honouring double quotes: what a backend that
// translates rules reads them with.
func Fields(line string) ([]string, error) { return tokenize(line) }

// tokenize splits a rule line like a shell would, honouring double quotes
// (iptables-save quotes strings such as log prefixes and comments).
func tokenize(line string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case (c == ' ' || c == '\t') && !inQuote:
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if have {
		toks = append(toks, cur.String())
	}
	if len(toks) < 2 {
		return nil, fmt.Errorf("malformed rule %q", line)
	}
	return toks, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parsePorts(s string) ([]portRange, error) {
	var out []portRange
	for p := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(p, ":")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", p)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("bad port %q", p)
			}
		}
		out = append(out, portRange{a, b})
	}
	return out, nil
}

// Packet is what a rule is matched against. A zero address, interface or
// port means "unknown": a rule that depends on it may or may not match.
type Packet struct {
	In, Out  string
	Src, Dst netip.Addr
	// SrcNet, when set, stands for Src: the packet comes from some
	// address of it, any one. A rule matches for certain only if it
	// matches every address of SrcNet, and certainly not only if none.
	SrcNet netip.Prefix
	Proto  string
	SPort  int
	DPort  int
	// State is the conntrack state the packet has: "NEW" for a packet
	// conntrack does not know, such as one of a session that was open
	// before connection tracking was turned on.
	State string
}

// Verdict is the outcome of a packet's walk through a chain.
type Verdict int

// The verdicts. Unknown means the ruleset cannot be proven either way:
// a rule that may or may not match stands in the way.
const (
	Unknown Verdict = iota + 1
	Accept
	Drop
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	}
	return "unknown"
}

type tri int

const (
	no tri = iota
	maybe
	yes
)

// Evaluate walks a packet through a built-in chain (INPUT, OUTPUT or
// FORWARD) and returns the verdict. It only says Accept when acceptance is
// certain: a rule it cannot model never counts as accepting, and one that
// might drop makes the verdict Unknown.
func (rs *Ruleset) Evaluate(chain string, p Packet) Verdict {
	return rs.Decide(chain, p).Verdict
}

// Decision is a packet's walk through a built-in chain: its verdict, and
// what decided it.
type Decision struct {
	Verdict Verdict
	// Chain is the chain of the deciding rule (a user chain that the
	// built-in one jumped to, say), or the built-in chain whose policy
	// decided.
	Chain string
	// Rule is the rule that decided: the one whose target the packet met
	// (for Unknown, the rule that may or may not match); nil when no rule
	// did and the chain's policy decided (or for Unknown, a chain that
	// does not exist or a jump loop).
	Rule *Rule
	// Jumps are the rules that jumped, in order from the built-in chain,
	// to the deciding rule's chain; none when it is the built-in chain.
	Jumps []*Rule
}

// Decide is Evaluate, telling what decided the verdict (see Decision).
func (rs *Ruleset) Decide(chain string, p Packet) Decision {
	c, ok := rs.Chains[chain]
	if !ok {
		return Decision{Verdict: Unknown, Chain: chain}
	}
	w := walker{rs: rs, p: p}
	o := w.rules(c, 0) // a built-in chain is never jumped to: nothing to remember
	if !o.returned {
		return o.Decision
	}
	d := Decision{Verdict: Unknown, Chain: chain}
	switch c.Policy {
	case "ACCEPT":
		d.Verdict = Accept
	case "DROP":
		d.Verdict = Drop
	}
	return d
}

// walker walks one packet through the chains. What a user chain does to
// the packet is remembered: chains that jump to the same chain several
// times would otherwise cost a walk exponential in their depth.
type walker struct {
	rs   *Ruleset
	p    Packet
	done map[*Chain]walked
}

// walked is what a chain does to the packet: a decision, or returned when
// the packet falls off the end of the chain (or meets RETURN).
type walked struct {
	Decision
	returned bool
}

func (w *walker) walk(c *Chain, depth int) walked {
	if depth > 32 {
		return walked{Decision: Decision{Verdict: Unknown, Chain: c.Name}} // a loop, which iptables refuses to load
	}
	if r, ok := w.done[c]; ok {
		return r
	}
	r := w.rules(c, depth)
	if w.done == nil {
		w.done = map[*Chain]walked{} // only where there are user chains
	}
	w.done[c] = r
	return r
}

func (w *walker) rules(c *Chain, depth int) walked {
	for i := range c.Rules {
		r := &c.Rules[i]
		m := r.matches(w.p, w.rs.Sets)
		if m == no || r.Target == "LOG" {
			continue
		}
		var d Decision
		if target, ok := w.rs.Chains[r.Target]; ok {
			t := w.walk(target, depth+1)
			if t.returned {
				continue
			}
			d = t.Decision
			d.Jumps = append([]*Rule{r}, d.Jumps...)
		} else if r.Target == "RETURN" {
			if m == yes {
				return walked{returned: true}
			}
			return walked{Decision: Decision{Verdict: Unknown, Chain: c.Name, Rule: r}}
		} else {
			if r.Target == "" { // no target: a counting rule
				continue
			}
			d = Decision{Verdict: verdicts[r.Target], Chain: c.Name, Rule: r}
		}
		if m == yes {
			return walked{Decision: d}
		}
		// It may match: an accept we cannot count on is skipped, a drop
		// we cannot rule out makes the answer unknown.
		if d.Verdict != Accept {
			return walked{Decision: Decision{Verdict: Unknown, Chain: c.Name, Rule: r}}
		}
	}
	return walked{returned: true}
}

func (r *Rule) matches(p Packet, sets map[string]*Set) tri {
	res := yes
	and := func(t tri) {
		res = min(res, t)
	}
	if r.Opaque {
		and(maybe)
	}
	and(matchSource(r.Src, p))
	and(matchPrefix(r.Dst, p.Dst))
	and(matchIface(r.In, p.In))
	and(matchIface(r.Out, p.Out))
	if r.Proto.set {
		and(flip(r.Proto.neg, known(p.Proto != "", r.Proto.v == p.Proto || r.Proto.v == "all")))
	}
	and(matchPorts(r.SPorts, p.SPort))
	and(matchPorts(r.DPorts, p.DPort))
	if r.CtStates.set {
		and(flip(r.CtStates.neg, known(p.State != "", slices.Contains(r.CtStates.v, p.State))))
	}
	for _, m := range r.SetMatches {
		and(matchSet(m, sets[m.Name], p))
	}
	return res
}

// matchSet tells whether a packet's address is in a set. A set that is
// not known, of a type that is not modelled, or with entries that are not
// read (Other) cannot prove that an address is not in it.
func matchSet(m SetMatch, s *Set, p Packet) tri {
	if s == nil || s.Type != HashIP && s.Type != HashNet {
		return maybe
	}
	a := p.Src
	if m.Flags[0] == "dst" {
		a = p.Dst
	} else if p.SrcNet.IsValid() {
		return matchSetNet(m, s, p.SrcNet)
	}
	if !a.IsValid() {
		return maybe
	}
	if s.Contains(a) {
		return flip(m.Neg, yes)
	}
	if len(s.Other) > 0 {
		return maybe
	}
	return flip(m.Neg, no)
}

func known(isKnown, ok bool) tri {
	switch {
	case !isKnown:
		return maybe
	case ok:
		return yes
	}
	return no
}

func flip(neg bool, t tri) tri {
	if !neg || t == maybe {
		return t
	}
	return yes - t
}

func matchPrefix(m match[netip.Prefix], a netip.Addr) tri {
	if !m.set {
		return yes
	}
	if m.v.Bits() == 0 {
		return flip(m.neg, yes)
	}
	return flip(m.neg, known(a.IsValid(), m.v.Contains(a)))
}

func matchIface(m match[string], name string) tri {
	if !m.set {
		return yes
	}
	ok := m.v == name
	if prefix, wild := strings.CutSuffix(m.v, "+"); wild {
		ok = strings.HasPrefix(name, prefix)
	}
	return flip(m.neg, known(name != "", ok))
}

func matchPorts(m match[[]portRange], port int) tri {
	if !m.set {
		return yes
	}
	ok := slices.ContainsFunc(m.v, func(r portRange) bool { return port >= r.lo && port <= r.hi })
	return flip(m.neg, known(port != 0, ok))
}
