package explain

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// String names a path: "wordpress-1 -> mysql-1 198.18.0.31 tcp/3306".
func (p *Path) String() string {
	to := p.To
	if p.Addr.IsValid() {
		to += " " + p.Addr.String()
	}
	return fmt.Sprintf("%s -> %s %s/%d", p.From, to, p.Proto, p.Port)
}

// Verdict is "allowed" or "denied".
func Verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// String says what decides in the hop, on one line: the host, its policy
// and chain, and the deciding rule at its line of the rendered policy
// ("mysql-1 IPv4 INPUT line 12: -A INPUT -s 198.18.0.21/32 ... -j ACCEPT"),
// or the chain's policy.
func (h Hop) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s IPv%d %s", h.Host, h.Family, h.Chain)
	if h.Line > 0 {
		fmt.Fprintf(&b, " line %d", h.Line)
	}
	switch {
	case h.Rule == "":
		b.WriteString(": cannot tell (a rule fwpush does not model stands in the way)")
		return b.String()
	case h.Policy:
		fmt.Fprintf(&b, ": %s (the chain's policy: no rule decides)", h.Rule)
	default:
		b.WriteString(": " + h.Rule)
	}
	if h.Verdict == policy.Unknown {
		b.WriteString(" (may or may not match: cannot tell)")
	}
	for _, j := range h.Jumps {
		b.WriteString(", reached by " + j)
	}
	return b.String()
}

// Where names where an origin is in the inventory, file being its path:
// "site.toml:66: roles.db.allow[0] (wordpress-1)", or for a line of
// the template's own, "site.toml:64: roles.db.template, private.tmpl:5".
func Where(file string, o roles.Origin) string {
	if o.Key == "" {
		return "origin unknown"
	}
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if o.Line > 0 {
			b.WriteString(":" + strconv.Itoa(o.Line))
		}
		b.WriteString(": ")
	}
	b.WriteString(o.Key)
	if o.Peer != "" {
		b.WriteString(" (" + o.Peer + ")")
	}
	if !o.Flow() && o.Template != "" {
		b.WriteString(", " + o.Template)
		if o.TemplateLine > 0 {
			b.WriteString(":" + strconv.Itoa(o.TemplateLine))
		}
	}
	return b.String()
}

// Because says in one line why a path is as it is: what decides it and
// where that comes from, file being the inventory's path.
func (p *Path) Because(file string) string {
	h := p.Decided()
	if h == nil {
		return p.Note
	}
	because := h.String() + " [" + Where(file, h.Origin) + "]"
	if p.Note != "" {
		because += "; " + p.Note
	}
	return because
}
