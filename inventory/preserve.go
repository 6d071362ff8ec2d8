package inventory

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// BuiltinChains are the filter table's own chains. fwpush owns them
// whatever preserve says: a pattern may keep the chains they jump to, never
// them.
var BuiltinChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// preserve checks the chain patterns written at key (firewall.preserve, or
// a role's preserve, whose patterns add to global) and returns the valid
// ones. That a pattern matches no chain the policy itself declares is
// checked where policies are rendered (roles.Compile).
func (v *validator) preserve(key string, pats, global []string) []string {
	var out []string
	for i, p := range pats {
		pkey := fmt.Sprintf("%s[%d]", key, i)
		if msg := badPattern(p); msg != "" {
			v.errorf(pkey, "%s", msg)
			continue
		}
		switch {
		case slices.Contains(pats[:i], p):
			v.warnf(pkey, "%q is listed twice", p)
		case slices.Contains(global, p):
			v.warnf(pkey, "%q is already kept on every host by firewall.preserve", p)
		}
		out = append(out, p)
	}
	return out
}

// badPattern says what is wrong with a chain pattern, or "".
func badPattern(p string) string {
	if p == "" {
		return `an empty pattern matches no chain: name a chain, or a glob such as "f2b-*"`
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Sprintf("%q is not a valid pattern: %v (patterns use *, ? and [...], as in \"DOCKER*\")", p, err)
	}
	// iptables refuses such chain names: the pattern could never match.
	if strings.ContainsAny(p, " \t\n\"'") || strings.HasPrefix(p, "-") || strings.HasPrefix(p, "!") {
		return fmt.Sprintf("%q matches no chain: chain names hold no whitespace or quotes and start with neither '-' nor '!'", p)
	}
	for _, c := range BuiltinChains {
		if ok, _ := path.Match(p, c); ok {
			return fmt.Sprintf("%q matches the built-in chain %s: fwpush owns INPUT, FORWARD and OUTPUT (the jumps they hold into a preserved chain are kept, not the chain itself)", p, c)
		}
	}
	return ""
}
