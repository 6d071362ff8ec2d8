package roles

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/templates"
)

// ReadFile reads a user template; os.ReadFile does.
type ReadFile func(path string) ([]byte, error)

// Compile renders every host's policy, with the Default options, and
// checks that none would lock fwpush out. It reports every problem at
// once, as an *inventory.Error in the inventory's "file:line: key:
// message" form: at the role's template (or public_tcp) key, naming the
// template file and line where it can.
func Compile(inv *inventory.Inventory, read ReadFile) (*Plan, error) {
	return CompileHosts(inv, read, inv.Hosts, Default())
}

// CompileHosts renders and checks the policies of some hosts of an
// inventory only, as Compile does for all of them: what one host needs
// costs one host (its role's template, the flows of its role, its sets),
// not the fleet. Problems of the other hosts are not looked for. The
// plan's Policies are those of hosts, sorted by name.
//
// A host's compile reads the inventory's hosts once, to find the members
// of its sets (or, without sets, the addresses its rules name); with
// Options.Sets its rules are one per flow, their number independent of
// the fleet's size, and the sets are made once and shared by every host
// that names them. TestCompileHostBudget holds the bytes it renders.
func CompileHosts(inv *inventory.Inventory, read ReadFile, hosts []*inventory.Host, opts Options) (*Plan, error) {
	c := &compiler{inv: inv, read: read, opts: opts, templates: map[string]*parsed{}, flows: Flows(inv)}
	plan := &Plan{Inventory: inv, Options: opts, templates: c.templates}
	for _, h := range hosts {
		pol, ok := c.host(h)
		if ok {
			plan.Policies = append(plan.Policies, pol)
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	slices.SortFunc(plan.Policies, func(a, b *Policy) int { return strings.Compare(a.Host.Name, b.Host.Name) })
	return plan, nil
}

// parsed is a role's template, parsed once for every role that names it.
type parsed struct {
	t    *template.Template
	file string // where it was read from; "" for a built-in template
	src  string // its text, for SourceLine; "" for a built-in template
	err  error
}

type compiler struct {
	inv       *inventory.Inventory
	read      ReadFile
	opts      Options
	templates map[string]*parsed
	flows     []Flow
	problems  problems

	// Made once, when first needed: the hosts by role and by site, the
	// sets by name and site (nil for an empty one), and which role's
	// key each set name belongs to.
	byRole, bySite map[string][]*inventory.Host
	sets           map[setKey]*policy.Set
	setOwners      map[string]string
	// trace, when set, records where each rule of the data made comes
	// from (see Plan.Trace).
	trace *dataTrace
	// parsed holds, with sets, the documents parsed so far by their text
	// with comments blanked: the hosts of a role in a site render the
	// same rules but for their header, and are parsed once.
	parsed map[string]parsedDoc
}

type parsedDoc struct {
	rs  *policy.Ruleset
	err error
}

// maxParsed bounds the documents remembered: past it, a template that
// makes each host's rules differ (a comment of their own, say) costs no
// more memory than one rule per address does.
const maxParsed = 4096

// parse parses a rendered document, or hands out (a shallow copy of, to be
// given its own sets) the same document parsed before.
func (c *compiler) parse(doc []byte, h *inventory.Host) (*policy.Ruleset, error) {
	if !c.withSets(h) {
		return policy.Parse(string(doc))
	}
	key := uncommented(doc)
	p, ok := c.parsed[key]
	if !ok {
		p.rs, p.err = policy.Parse(string(doc))
		if c.parsed == nil {
			c.parsed = map[string]parsedDoc{}
		}
		if len(c.parsed) < maxParsed {
			c.parsed[key] = p
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	rs := *p.rs
	return &rs, nil
}

// uncommented is a document with its comment lines blanked: what Parse
// reads of it, at the same lines.
func uncommented(doc []byte) string {
	var b strings.Builder
	b.Grow(len(doc))
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (c *compiler) err() error { return c.problems.err(c.inv) }

func (c *compiler) host(h *inventory.Host) (*Policy, bool) {
	role, _ := c.inv.Role(h.Role)
	key := "roles." + role.Name + ".template"
	pt := c.template(role.Template)
	if pt.err != nil {
		c.problems.add(key, "template", pt.err.Error(), h.Name) // once per role
		return nil, false
	}
	pol := &Policy{Host: h}
	hs := &hostSets{}
	for _, family := range []int{4, 6} {
		out, err := templates.Render(pt.t, c.data(h, family, hs))
		if err != nil {
			// The same mistake fails every host of the role: one line.
			msg := fmt.Sprintf("%s (IPv%d, %s)", templateError(err), family, hostsMark)
			c.problems.add(key, msg, msg, h.Name)
			return nil, false
		}
		if family == 4 {
			pol.V4 = out
		} else {
			pol.V6 = out
		}
	}
	var rs [2]*policy.Ruleset
	for i, family := range []int{4, 6} {
		doc := pol.V4
		if family == 6 {
			doc = pol.V6
		}
		r, err := c.parse(doc, h)
		if err != nil {
			n, why := cutLine(err.Error())
			c.policyProblem(role, pt, h, family, doc, n, "fwpush refuses", why)
			continue
		}
		rs[i] = r
		c.setsOf(role, pt, h, family, doc, r, hs, pol)
	}
	if rs[0] == nil || rs[1] == nil {
		return pol, true
	}
	slices.SortFunc(pol.Sets, func(a, b *policy.Set) int { return strings.Compare(a.Name, b.Name) })
	rs[0].WithSets(pol.Sets)
	if h.Backend == inventory.NFTables {
		c.translate(role, pt, h, pol, rs)
	} else {
		c.preserveOwn(role, h, pol)
	}
	lockKey := key
	if c.inv.IsBastion(h) && inventory.IsBuiltin(role.Template) && !slices.Contains(role.PublicTCP, h.Port) {
		// The built-in templates open SSH on a bastion's public side
		// through public_tcp only.
		lockKey = "roles." + role.Name + ".public_tcp"
	}
	for _, err := range lockout(c.inv, h, rs[0]) {
		msg := fmt.Sprintf("host %s: %v", h.Name, err)
		if lockKey != key {
			msg += fmt.Sprintf("; add %d to public_tcp", h.Port)
		}
		c.problems.add(lockKey, "", msg, "")
	}
	return pol, true
}

// translate makes the nftables table of the policy of h, a host of that
// backend, from its parsed documents, and reports every rule that the
// translation refuses, at the line of the template that wrote it.
func (c *compiler) translate(role *inventory.Role, pt *parsed, h *inventory.Host, pol *Policy, rs [2]*policy.Ruleset) {
	t, errs := nft.Translate(rs[0], rs[1], pol.Sets)
	for _, e := range errs {
		doc := pol.V4
		if e.Family == 6 {
			doc = pol.V6
		}
		c.policyProblem(role, pt, h, e.Family, doc, e.Line, "the nftables backend refuses", e.Msg)
	}
	pol.NFT = t
}

// setsOf adds to pol the sets one of its documents matches, and reports
// a match on a set the host's data does not offer (a user template's own,
// or another program's: rules that use those belong in a preserved
// chain), or on a set of the other family.
func (c *compiler) setsOf(role *inventory.Role, pt *parsed, h *inventory.Host, family int, doc []byte, rs *policy.Ruleset, hs *hostSets, pol *Policy) {
	want := policy.Inet
	if family == 6 {
		want = policy.Inet6
	}
	for _, name := range rs.SetNames() {
		s := hs.byName(name)
		n := setLine(rs, name)
		switch {
		case s == nil:
			c.policyProblem(role, pt, h, family, doc, n, "fwpush refuses",
				fmt.Sprintf("set %s is not one fwpush makes for this host: a rule that matches another program's set belongs in a preserved chain", name))
		case s.Family != want:
			c.policyProblem(role, pt, h, family, doc, n, "fwpush refuses", fmt.Sprintf("set %s is of family %s", name, s.Family))
		case !slices.Contains(pol.Sets, s):
			pol.Sets = append(pol.Sets, s)
		}
	}
}

// setLine is the line of the first rule that matches set name.
func setLine(rs *policy.Ruleset, name string) int {
	for _, ch := range rs.Order {
		for _, r := range rs.Chains[ch].Rules {
			if slices.ContainsFunc(r.SetMatches, func(m policy.SetMatch) bool { return m.Name == name }) {
				return r.Line
			}
		}
	}
	return 0
}

// preserveOwn reports every preserve pattern of the host's role that
// matches a chain its own policy declares: a chain fwpush writes cannot
// also be kept for another program. Hosts that the same pattern and chain
// fail are reported together.
func (c *compiler) preserveOwn(role *inventory.Role, h *inventory.Host, pol *Policy) {
	pats := c.inv.Preserve(role.Name)
	if len(pats) == 0 {
		return
	}
	var declared []string
	for _, ch := range append(policy.Chains(string(pol.V4)), policy.Chains(string(pol.V6))...) {
		if !slices.Contains(declared, ch) {
			declared = append(declared, ch)
		}
	}
	for i, p := range pats {
		for _, ch := range declared {
			if !policy.Matches([]string{p}, ch) {
				continue
			}
			key := c.inv.PreserveKey(role.Name, i)
			msg := fmt.Sprintf("%q matches chain %s, which the policy of %s declares: a chain fwpush writes is not kept for another program; narrow the pattern, or rename the chain in the template", p, ch, hostsMark)
			c.problems.add(key, "preserve:"+p+":"+ch, msg, h.Name)
		}
	}
}

// template parses a role's template once, whichever roles name it.
func (c *compiler) template(name string) *parsed {
	if pt, ok := c.templates[name]; ok {
		return pt
	}
	pt := &parsed{}
	c.templates[name] = pt
	text, builtin := templates.Builtin(name)
	file := name + ".tmpl"
	if !builtin {
		file = c.inv.TemplatePath(name)
		b, err := c.read(file)
		if err != nil {
			pt.err = err
			return pt
		}
		text = string(b)
		pt.file, pt.src = file, text
	}
	pt.t, pt.err = templates.Parse(file, text)
	if pt.err != nil {
		pt.err = fmt.Errorf("%s", templateError(pt.err))
	}
	return pt
}

// templateError drops text/template's "template: " before the file and
// line it names: the message then reads "file:line: ..." like every other.
func templateError(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

var lineRE = regexp.MustCompile(`^line (\d+): `)

// cutLine splits "line 7: what" into 7 and "what"; 0 when there is no line.
func cutLine(msg string) (int, string) {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, msg[len(m[0]):]
	}
	return 0, msg
}

// policyProblem reports that who refuses line n (0: unknown) of a host's
// rendered policy, and why: at the role's template key, naming the line of
// a user template that wrote it when SourceLine can tell. Hosts that the
// same template line fails are reported together (their own lines differ:
// the first host's is shown); otherwise hosts refused at the same line
// for the same reason are.
func (c *compiler) policyProblem(role *inventory.Role, pt *parsed, h *inventory.Host, family int, doc []byte, n int, who, why string) {
	key := "roles." + role.Name + ".template"
	rule := ""
	if lines := strings.Split(string(doc), "\n"); n > 0 && n <= len(lines) {
		rule = strings.TrimSpace(lines[n-1])
	}
	if tl := templateLine(pt, rule); tl > 0 {
		msg := fmt.Sprintf("%s:%d: %s the IPv%d policy of %s: %s (%s, line %d: %s)", pt.file, tl, who, family, hostsMark, why, h.Name, n, rule)
		c.problems.add(key, fmt.Sprintf("%s:%d:%d:%s:%s", pt.file, tl, family, who, why), msg, h.Name)
		return
	}
	msg := fmt.Sprintf("%s the IPv%d policy of %s: %s", who, family, hostsMark, why)
	if rule != "" {
		msg = fmt.Sprintf("%s the IPv%d policy of %s at line %d (%s): %s", who, family, hostsMark, n, rule, why)
	}
	c.problems.add(key, msg, msg, h.Name)
}

// templateLine is the line of a user template that wrote rule, or 0. A
// COMMIT is where iptables-restore reports what the kernel refused in the
// whole table: no line of the template is to blame for it.
func templateLine(pt *parsed, rule string) int {
	if pt.src == "" || rule == "" || rule == "COMMIT" {
		return 0
	}
	return templates.SourceLine(pt.src, rule)
}

// problems collects problems in the order found. A problem's message
// with hostsMark in it stands for every host added to it under the same
// group: the hosts are filled in last.
type problems struct {
	list []problem
}

const hostsMark = "\x00hosts\x00"

type problem struct {
	key, group, msg string
	hosts           []string
}

// add records a problem at key, or adds host to the problem of the same
// key and group ("": a problem of its own).
func (ps *problems) add(key, group, msg, host string) {
	if group != "" {
		for i := range ps.list {
			if p := &ps.list[i]; p.key == key && p.group == group {
				p.hosts = append(p.hosts, host)
				return
			}
		}
	}
	p := problem{key: key, group: group, msg: msg}
	if host != "" {
		p.hosts = []string{host}
	}
	ps.list = append(ps.list, p)
}

// err is an *inventory.Error holding every problem, sorted by the line of
// its key, or nil.
func (ps *problems) err(inv *inventory.Inventory) error {
	if len(ps.list) == 0 {
		return nil
	}
	e := &inventory.Error{File: inv.Path}
	for _, p := range ps.list {
		msg := p.msg
		if p.hosts != nil {
			msg = strings.Replace(msg, hostsMark, hostList(p.hosts), 1)
		}
		e.Problems = append(e.Problems, inv.Problem(p.key, msg))
	}
	slices.SortStableFunc(e.Problems, func(a, b inventory.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return e
}

// hostList names hosts in prose: "host a", "hosts a and b", "hosts a, b
// and 3 more".
func hostList(hs []string) string {
	switch n := len(hs); {
	case n == 1:
		return "host " + hs[0]
	case n <= 3:
		return "hosts " + strings.Join(hs[:n-1], ", ") + " and " + hs[n-1]
	default:
		return fmt.Sprintf("hosts %s and %d more", strings.Join(hs[:2], ", "), n-2)
	}
}
