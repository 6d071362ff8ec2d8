package policy

import (
	"slices"
	"strings"
)

// Foreign is what other software keeps in a host's filter table: the user
// chains a policy does not declare (Docker's DOCKER-USER, fail2ban's
// f2b-sshd, ...), their rules, and the rules of the built-in chains that
// jump into them. fwpush leaves all of it alone: a policy owns the
// built-in chains' own rules and the chains it declares, nothing else.
type Foreign struct {
	// Chains are the foreign chains' names, in the order they were saved.
	Chains []string
	// Jumps are the built-in chains' rules that jump into a foreign chain,
	// in their order.
	Jumps []string
}

// SplitForeign separates a canonical live ruleset (see Canonical) into
// the part the desired policy owns, comparable with the desired policy's
// canonical form, and what belongs to other software.
func SplitForeign(live, desired string) (own string, foreign Foreign) {
	declared := chains(desired)
	for _, c := range chains(live) {
		if !slices.Contains(declared, c) {
			foreign.Chains = append(foreign.Chains, c)
		}
	}
	if len(foreign.Chains) == 0 {
		return live, foreign
	}
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimSuffix(live, "\n"), "\n") {
		switch chain, target := ruleChainTarget(line); {
		case strings.HasPrefix(line, ":") && slices.Contains(foreign.Chains, strings.Fields(line[1:])[0]):
			continue // a foreign chain's declaration
		case chain != "" && slices.Contains(foreign.Chains, chain):
			continue // a foreign chain's own rule: not ours to compare or touch
		case chain != "" && slices.Contains(foreign.Chains, target):
			foreign.Jumps = append(foreign.Jumps, line)
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String(), foreign
}

// Merge returns the document to load with iptables-restore --noflush:
// the desired policy with the chains it owns flushed explicitly, so that
// the foreign chains keep their rules (a ban fail2ban just added, say), and
// the jumps into them put back at the top of their chains, where Docker and
// fail2ban insert them. With no foreign chains it is the desired policy.
func (f Foreign) Merge(desired string) string {
	var b strings.Builder
	flushed := false
	own := chains(desired)
	for line := range strings.SplitSeq(strings.TrimSuffix(desired, "\n"), "\n") {
		if !flushed && (strings.HasPrefix(line, "-A ") || line == "COMMIT") {
			for _, c := range own {
				b.WriteString("-F " + c + "\n")
			}
			for _, j := range f.Jumps {
				b.WriteString(j + "\n")
			}
			flushed = true
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// chains lists the chains a document declares, in order.
func chains(doc string) []string {
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
// target ("" for other lines).
func ruleChainTarget(line string) (chain, target string) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "-A" {
		return "", ""
	}
	for i := 2; i+1 < len(f); i++ {
		if f[i] == "-j" || f[i] == "-g" {
			return f[1], f[i+1]
		}
	}
	return f[1], ""
}
