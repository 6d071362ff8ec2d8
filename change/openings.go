package change

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/policy"
)

// A preserve pattern trusts what it matches: fwpush neither compares nor
// touches a preserved chain, so a chain named like one (f2b-evil) could
// let anything in. Its contents stay opaque, but the one rule that opens
// a host whatever its policy says is named: an ACCEPT without any match
// in a preserved chain that a built-in chain reaches.

// openings says the openings of the IPv4 and IPv6 tables (see
// policy.Openings), one sentence each, and the chains that hold them.
func openings(v4, v6 []policy.Opening) (notes, chains []string) {
	for _, fam := range []struct {
		name string
		open []policy.Opening
	}{{"IPv4", v4}, {"IPv6", v6}} {
		for _, o := range fam.open {
			notes = append(notes, fmt.Sprintf("%s: the preserved chain %s accepts every packet that %s sends it (%s): the policy cannot deny them; a preserve pattern trusts the chains it keeps (run --strict-preserve counts this as drift)",
				fam.name, o.Chain, strings.Join(o.From, " and "), o.Rule))
			if !slices.Contains(chains, o.Chain) {
				chains = append(chains, o.Chain)
			}
		}
	}
	return notes, chains
}

// strictReason says why a run refuses the unknown chains, of which
// --strict-preserve did not keep chains, which a preserve pattern
// matches: reason is why it refuses them all as unknown, which holds for
// the others.
func strictReason(chains, unknown []string, reason string) string {
	why := fmt.Sprintf("%s: a preserve pattern keeps %s, but %s every packet without any match, reached from a built-in chain, which --strict-preserve counts as drift",
		strings.Join(chains, ", "), itThem(chains), map[bool]string{true: "it accepts", false: "they accept"}[len(chains) == 1])
	for _, c := range unknown {
		if !slices.Contains(chains, c) {
			return why + "; and " + reason
		}
	}
	return why + "; remove " + itThem(chains) + " with --force-own, or by hand"
}
