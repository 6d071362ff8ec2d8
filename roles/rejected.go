package roles

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/policy"
)

// Rejection is iptables-restore (or ip6tables-restore) refusing a host's
// rendered policy, or ipset refusing a set, as the machine fwpush runs on
// found by loading it.
type Rejection struct {
	Host   string
	Family int // 4 or 6
	// Set is the set whose ipset restore document (policy.RestoreSets of
	// it alone) was refused; nil for a host's policy.
	Set  *policy.Set
	Line int    // the document's line it names; 0 when it names none
	Msg  string // what it said
	// Who refused, as the message says it ("nft refuses"); "" for
	// iptables-restore or ip6tables-restore, by Family. With Family 0,
	// Line is a line of the host's nftables document (Policy.NFTDocument)
	// that translates no line of the policy's.
	Who string
}

// Rejected reports rejections as Compile reports its problems: an
// *inventory.Error with one problem at the role's template key for each
// template line (or policy line) refused, naming the template line when it
// can be found and every host it fails. It returns nil for no rejections.
func (p *Plan) Rejected(rejections []Rejection) error {
	c := &compiler{inv: p.Inventory, templates: p.templates}
	for _, r := range rejections {
		if r.Set != nil {
			c.problems.add("", "", p.setProblem(r), "")
			continue
		}
		pol, ok := p.Policy(r.Host)
		if !ok {
			continue
		}
		role, _ := p.Inventory.Role(pol.Host.Role)
		doc, who := pol.V4, "iptables-restore refuses"
		if r.Family == 6 {
			doc, who = pol.V6, "ip6tables-restore refuses"
		}
		if r.Who != "" {
			who = r.Who
		}
		if r.Family == 0 {
			c.problems.add("roles."+role.Name+".template", "", nftProblem(pol, r), "")
			continue
		}
		pt := p.templates[role.Template]
		if pt == nil {
			pt = &parsed{}
		}
		c.policyProblem(role, pt, pol.Host, r.Family, doc, r.Line, who, r.Msg)
	}
	return c.err()
}

// nftProblem says that nft refuses a line of a host's nftables document
// that is not a rule of the policy: fwpush wrote it.
func nftProblem(pol *Policy, r Rejection) string {
	where := ""
	if lines := strings.Split(string(pol.NFTDocument().Text), "\n"); r.Line > 0 && r.Line <= len(lines) {
		where = fmt.Sprintf(" at line %d (%s)", r.Line, strings.TrimSpace(lines[r.Line-1]))
	}
	return fmt.Sprintf("%s the nftables policy of host %s%s: %s", cmpOr(r.Who, "nft refuses"), pol.Host.Name, where, r.Msg)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// setProblem says that ipset refuses a set, at which line of its document,
// and which hosts' policies have it. fwpush writes sets itself: no line of
// a template is to blame.
func (p *Plan) setProblem(r Rejection) string {
	var hosts []string
	for _, pol := range p.Policies {
		if slices.Contains(pol.Sets, r.Set) {
			hosts = append(hosts, pol.Host.Name)
		}
	}
	who := "no host"
	if len(hosts) > 0 {
		who = hostList(hosts)
	}
	where := ""
	if lines := strings.Split(string(policy.RestoreSets([]*policy.Set{r.Set})), "\n"); r.Line > 0 && r.Line <= len(lines) {
		where = fmt.Sprintf(" at line %d (%s)", r.Line, lines[r.Line-1])
	}
	return fmt.Sprintf("ipset refuses set %s of %s%s: %s", r.Set.Name, who, where, r.Msg)
}
