package policy

import (
	"slices"
	"strings"
)

// Opening is a rule of a preserved chain that accepts every packet that
// reaches it, without any match, in a chain reached from a built-in chain:
// whatever fwpush's policy denies, the packets that go through that jump
// are let in. A preserved chain is opaque (fwpush neither compares nor
// touches it), so this is what a name that matches a preserve pattern
// could hide: `f2b-evil`, jumped to from the top of INPUT, holding
// `-j ACCEPT`.
type Opening struct {
	Chain string // the preserved chain that holds the rule
	Rule  string // the rule, as the canonical table holds it
	// From are the built-in chains it is reached from (through jumps and
	// gotos, in the table's order).
	From []string
}

// Openings lists the Openings of a canonical live table whose chains
// preserved are kept by preserve patterns, in the table's order.
func Openings(table string, preserved []string) []Opening {
	if len(preserved) == 0 {
		return nil
	}
	// Which chain each built-in chain reaches, through any chain.
	edges := map[string][]string{}
	for line := range strings.SplitSeq(table, "\n") {
		if chain, target := ruleChainTarget(line); chain != "" && target != "" {
			edges[chain] = append(edges[chain], target)
		}
	}
	reached := map[string][]string{} // chain: the built-in chains it is reached from
	for _, b := range builtinChains {
		seen := map[string]bool{b: true}
		for queue := []string{b}; len(queue) > 0; queue = queue[1:] {
			for _, next := range edges[queue[0]] {
				if !seen[next] {
					seen[next] = true
					reached[next] = append(reached[next], b)
					queue = append(queue, next)
				}
			}
		}
	}
	var out []Opening
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "-A" || f[2] != "-j" || f[3] != "ACCEPT" {
			continue // a match, or not an accept
		}
		if slices.Contains(preserved, f[1]) && len(reached[f[1]]) > 0 {
			out = append(out, Opening{Chain: f[1], Rule: line, From: reached[f[1]]})
		}
	}
	return out
}
