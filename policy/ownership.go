package policy

import (
	"path"
	"slices"
	"strings"
)

// builtinChains are the filter table's own chains: always the policy's,
// whatever it declares and whatever a pattern says.
var builtinChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// Split is a live filter table (canonical, see Canonical) divided by who
// owns each chain:
//
//   - the policy's own: the built-in chains and the chains the desired
//     policy declares;
//   - preserved: chains a preserve pattern matches (Docker's DOCKER*,
//     fail2ban's f2b-*), kept with their rules and with the jumps the
//     built-in chains hold into them, and never compared;
//   - unknown: every other chain. It and the jumps into it stay in Own, so
//     that they show as drift: nothing unknown is kept silently.
type Split struct {
	// Own is the live table without the preserved chains, their rules and
	// the built-in chains' jumps into them: what compares with the desired
	// policy's canonical form.
	Own string
	// Preserved are the live chains a pattern keeps, in the order saved.
	Preserved []string
	// Unknown are the live chains that neither the policy declares nor a
	// pattern keeps, in the order saved.
	Unknown []string
	// Held are the unknown chains that a preserved chain jumps to: they
	// cannot be removed without breaking the chain that jumps there.
	Held []string
	// Jumps are the built-in chains' rules that jump into a preserved
	// chain, in the order saved.
	Jumps []string

	// anchors holds, for each of Jumps, the policy's own rules of its
	// chain that come before it, nearest last: where Merge puts it back.
	anchors [][]string
}

// SplitLive divides a canonical live table by owner: see Split. desired is
// the policy's canonical form; preserve are glob patterns (path.Match) of
// the chains other software keeps.
func SplitLive(live, desired string, preserve []string) Split {
	return SplitLiveExcept(live, desired, preserve, nil)
}

// SplitLiveExcept is SplitLive, but the chains except, which a pattern
// may match, are not preserved: unknown (drift), as --strict-preserve
// has the chains that open the host whatever the policy says (see
// Openings).
func SplitLiveExcept(live, desired string, preserve, except []string) Split {
	var s Split
	declared := append(slices.Clone(builtinChains), Chains(desired)...)
	for _, c := range Chains(live) {
		switch {
		case slices.Contains(declared, c):
		case Matches(preserve, c) && !slices.Contains(except, c):
			s.Preserved = append(s.Preserved, c)
		default:
			s.Unknown = append(s.Unknown, c)
		}
	}
	if len(s.Preserved) == 0 {
		s.Own = live
		return s
	}
	var b strings.Builder
	own := map[string][]string{} // a built-in chain's own rules so far
	for line := range strings.SplitSeq(strings.TrimSuffix(live, "\n"), "\n") {
		chain, target := ruleChainTarget(line)
		switch {
		case strings.HasPrefix(line, ":") && slices.Contains(s.Preserved, strings.Fields(line[1:])[0]):
			continue // a preserved chain's declaration
		case chain != "" && slices.Contains(s.Preserved, chain):
			if slices.Contains(s.Unknown, target) && !slices.Contains(s.Held, target) {
				s.Held = append(s.Held, target)
			}
			continue // a preserved chain's own rule: never compared or touched
		case slices.Contains(builtinChains, chain) && slices.Contains(s.Preserved, target):
			s.Jumps = append(s.Jumps, line)
			s.anchors = append(s.anchors, slices.Clone(own[chain]))
			continue
		case slices.Contains(builtinChains, chain):
			own[chain] = append(own[chain], line)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	s.Own = b.String()
	return s
}

// Matches reports whether a chain pattern (path.Match) matches chain. The
// built-in chains never match: the policy owns them.
func Matches(patterns []string, chain string) bool {
	if slices.Contains(builtinChains, chain) {
		return false
	}
	return slices.ContainsFunc(patterns, func(p string) bool {
		ok, _ := path.Match(p, chain)
		return ok
	})
}

// Merge returns the document that loads the desired policy with
// iptables-restore --noflush, keeping what the split preserves: it flushes
// the chains the policy owns (the preserved chains keep their rules, such
// as a ban fail2ban just added), removes the unknown chains (but the held
// ones, which a preserved chain still jumps to), and puts every jump into
// a preserved chain back where it was: after the nearest of the policy's
// rules that came before it and is still in the policy, else at the top of
// its chain, and always in the order saved. Without preserved or unknown
// chains it is the desired policy with its chains flushed.
func (s Split) Merge(desired string) string {
	lines := strings.Split(strings.TrimSuffix(desired, "\n"), "\n")
	// Where each jump goes: before the nth rule of its chain in the
	// desired policy (n = the chain's rule count: at its end).
	rules := map[string][]string{}
	for _, l := range lines {
		if chain, _ := ruleChainTarget(l); chain != "" {
			rules[chain] = append(rules[chain], l)
		}
	}
	pos := make([]int, len(s.Jumps))
	last := map[string]int{}
	for i, j := range s.Jumps {
		chain, _ := ruleChainTarget(j)
		p := 0
		for k := len(s.anchors[i]) - 1; k >= 0; k-- {
			if at := nthIndex(rules[chain], s.anchors[i][k], occurrence(s.anchors[i][:k], s.anchors[i][k])); at >= 0 {
				p = at + 1
				break
			}
		}
		pos[i] = max(p, last[chain])
		last[chain] = pos[i]
	}
	jumpsAt := func(b *strings.Builder, chain string, n int) {
		for i, j := range s.Jumps {
			if c, _ := ruleChainTarget(j); c == chain && pos[i] == n {
				b.WriteString(j + "\n")
			}
		}
	}

	var b strings.Builder
	flushed := false
	written := map[string]int{}
	for _, line := range lines {
		if !flushed && (strings.HasPrefix(line, "-A ") || line == "COMMIT") {
			for _, c := range Chains(desired) {
				b.WriteString("-F " + c + "\n")
			}
			var gone []string
			for _, c := range s.Unknown {
				if !slices.Contains(s.Held, c) {
					b.WriteString("-F " + c + "\n")
					gone = append(gone, c)
				}
			}
			for _, c := range gone {
				b.WriteString("-X " + c + "\n")
			}
			flushed = true
		}
		if line == "COMMIT" {
			for _, c := range builtinChains {
				jumpsAt(&b, c, len(rules[c]))
			}
		}
		if chain, _ := ruleChainTarget(line); chain != "" {
			jumpsAt(&b, chain, written[chain])
			written[chain]++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// occurrence counts line in lines.
func occurrence(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// nthIndex is the index of the nth (from 0) occurrence of line in lines,
// or -1.
func nthIndex(lines []string, line string, n int) int {
	for i, l := range lines {
		if l == line {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return -1
}

// Chains lists the chains a document declares, in order.
func Chains(doc string) []string {
	var out []string
	for line := range strings.SplitSeq(doc, "\n") {
		if strings.HasPrefix(line, ":") {
			if f := strings.Fields(line[1:]); len(f) > 0 {
				out = append(out, f[0])
			}
		}
	}
	return out
}

// ruleChainTarget returns the chain of a "-A CHAIN ..." line and its jump
// (or goto) target ("" for other lines).
// Quoted words (a comment saying "-j X") are never taken for the target.
func ruleChainTarget(line string) (chain, target string) {
	if !strings.HasPrefix(line, "-A ") {
		return "", ""
	}
	sp := spans(line)
	word := func(i int) string { return line[sp[i][0]:sp[i][1]] }
	if len(sp) < 2 {
		return "", ""
	}
	for i := 2; i+1 < len(sp); i++ {
		if w := word(i); w == "-j" || w == "-g" {
			return word(1), word(i + 1)
		}
	}
	return word(1), ""
}

// Open reports whether a canonical filter table holds nothing: no rule,
// no user chain, and every built-in chain's policy ACCEPT, as a table no
// one has written to. An empty document is open.
func Open(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		switch f := strings.Fields(line); {
		case len(f) == 0, f[0] == "*filter", f[0] == "COMMIT":
		case strings.HasPrefix(f[0], ":") && len(f) >= 2 && slices.Contains(builtinChains, f[0][1:]) && f[1] == "ACCEPT":
		default:
			return false
		}
	}
	return true
}

// knownPatterns are the chain names of software that keeps chains in the
// filter table, by prefix, and the pattern that keeps all of them.
var knownPatterns = []struct{ prefix, pattern string }{
	{"DOCKER", "DOCKER*"},     // Docker
	{"f2b-", "f2b-*"},         // fail2ban
	{"KUBE-", "KUBE-*"},       // Kubernetes: kube-proxy and the kubelet
	{"cali-", "cali-*"},       // Calico
	{"CILIUM_", "CILIUM_*"},   // Cilium
	{"FLANNEL-", "FLANNEL-*"}, // flannel
	{"LIBVIRT_", "LIBVIRT_*"}, // libvirt
}

// SuggestPatterns returns patterns that keep chains: for the chains of
// well-known software (Docker, fail2ban, Kubernetes, ...) the pattern that
// keeps all of theirs, for any other chain its own name; each once, in the
// order the chains are given.
func SuggestPatterns(chains []string) []string {
	var out []string
	for _, c := range chains {
		p := c
		for _, k := range knownPatterns {
			if strings.HasPrefix(c, k.prefix) {
				p = k.pattern
				break
			}
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
