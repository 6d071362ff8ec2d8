package roles

// Rejection is iptables-restore (or ip6tables-restore) refusing a host's
// rendered policy, as the machine fwpush runs on found by loading it.
type Rejection struct {
	Host   string
	Family int    // 4 or 6
	Line   int    // the policy's line it names; 0 when it names none
	Msg    string // what it said
}

// Rejected reports rejections as Compile reports its problems: an
// *inventory.Error with one problem at the role's template key for each
// template line (or policy line) refused, naming the template line when it
// can be found and every host it fails. It returns nil for no rejections.
func (p *Plan) Rejected(rejections []Rejection) error {
	c := &compiler{inv: p.Inventory, templates: p.templates}
	for _, r := range rejections {
		pol, ok := p.Policy(r.Host)
		if !ok {
			continue
		}
		role, _ := p.Inventory.Role(pol.Host.Role)
		doc, who := pol.V4, "iptables-restore refuses"
		if r.Family == 6 {
			doc, who = pol.V6, "ip6tables-restore refuses"
		}
		pt := p.templates[role.Template]
		if pt == nil {
			pt = &parsed{}
		}
		c.policyProblem(role, pt, pol.Host, r.Family, doc, r.Line, who, r.Msg)
	}
	return c.err()
}
