package roles

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/templates"
)

// Origin says where a line of a rendered policy comes from: the entry of
// the inventory that makes it, and the template line that wrote it.
type Origin struct {
	// Key is the inventory key that makes the line: an allow entry
	// ("roles.db.allow[0]"), a role's public_tcp ("roles.lb.public_tcp"),
	// the site's bastions ("ssh.tunnel", "sites.east.tunnel") for the SSH
	// paths fwpush keeps open through them, or, for a line the template
	// writes by itself (a chain's policy, loopback, conntrack, ICMP), the
	// role's template ("roles.db.template").
	Key string
	// Line is the line of the inventory Key is written on; 0 when unknown.
	Line int
	// Peer names the other end of a flow's rule: a host, a CIDR as
	// written, or the role whose set the rule matches; "" for lines of the
	// template's own.
	Peer string
	// Template and TemplateLine are the template file that wrote the line
	// ("private.tmpl", "base.tmpl" for the built-in ones, a user
	// template's path) and its line there; "" and 0 when no line of it can
	// be told (see templates.SourceLine).
	Template     string
	TemplateLine int
}

// Flow reports whether the line comes from a flow (an allow entry,
// public_tcp, the bastions) rather than from the template alone.
func (o Origin) Flow() bool { return !strings.HasSuffix(o.Key, ".template") }

// Trace is one host's rendered policy with the origin of every line.
type Trace struct {
	Policy *Policy
	// V4 and V6 hold the origin of each line of Policy.V4 and Policy.V6:
	// V4[n-1] is line n's.
	V4, V6 []Origin
	// Exact is false when the template does with a rule's data more than
	// write it out (compares it, cuts it), so that which line a rule of
	// the data became cannot be told: every line then has the origin of
	// the template's own lines.
	Exact bool
}

// Origin returns the origin of line n (from 1) of the policy's IPv4
// (family 4) or IPv6 document; the zero Origin when there is no such
// line.
func (t *Trace) Origin(family, n int) Origin {
	lines := t.V4
	if family == 6 {
		lines = t.V6
	}
	if n < 1 || n > len(lines) {
		return Origin{}
	}
	return lines[n-1]
}

// Trace finds where each line of a compiled host's policy comes from.
// The compile keeps no provenance (it costs nothing then); Trace renders
// the host's templates again, twice: once as the compile did, and once
// with every string of a rule's data (peer, set, match) tagged with that
// rule's number, so that each rendered line that carries a tag came from
// that rule, and from the inventory entry that made the rule. The tagged
// rendering must be the compiled policy once the tags are taken out; if it
// is not, the trace is not Exact.
func (p *Plan) Trace(host string) (*Trace, error) {
	pol, ok := p.Policy(host)
	if !ok {
		return nil, fmt.Errorf("host %s: no compiled policy", host)
	}
	h := pol.Host
	role, ok := p.Inventory.Role(h.Role)
	if !ok {
		return nil, fmt.Errorf("host %s: no role %s", host, h.Role)
	}
	pt := p.templates[role.Template]
	if pt == nil || pt.err != nil || pt.t == nil {
		return nil, fmt.Errorf("host %s: template %s was not compiled", host, role.Template)
	}
	c := &compiler{inv: p.Inventory, opts: p.Options, templates: p.templates, flows: Flows(p.Inventory)}
	own := templateOrigin(p.Inventory, role, pt)
	t := &Trace{Policy: pol, Exact: true}
	for _, family := range []int{4, 6} {
		doc := pol.V4
		if family == 6 {
			doc = pol.V6
		}
		c.trace = &dataTrace{}
		d := c.data(h, family, &hostSets{})
		origins, exact := traceDoc(pt, d, c.trace, bastionKey(p.Inventory, h.Site), doc, own)
		for i := range origins {
			origins[i].Line = p.Inventory.Line(origins[i].Key)
		}
		t.Exact = t.Exact && exact
		if family == 4 {
			t.V4 = origins
		} else {
			t.V6 = origins
		}
	}
	return t, nil
}

// The lists of a template's data whose rules are traced, in the order of
// dataTrace's lists.
type traceKind int

const (
	traceIngress traceKind = iota
	traceCrossSite
	traceEgress
	traceTunnelReplies
	tracePublicTCP
	traceKinds
)

// dataTrace records, as the compiler makes a template's data, the origin
// of each rule of its lists. A nil dataTrace records nothing: the compile
// pays nothing for it.
type dataTrace struct {
	lists [traceKinds][]Origin
}

func (t *dataTrace) flow(kind traceKind, f Flow, rules []templates.Rule) {
	if t != nil {
		t.add(kind, Origin{Key: f.Key()}, rules)
	}
}

func (t *dataTrace) publicTCP(role string, rules []templates.Rule) {
	if t != nil {
		t.add(tracePublicTCP, Origin{Key: "roles." + role + ".public_tcp"}, rules)
	}
}

func (t *dataTrace) tunnelReplies(inv *inventory.Inventory, site string, rules []templates.Rule) {
	if t != nil {
		t.add(traceTunnelReplies, Origin{Key: bastionKey(inv, site)}, rules)
	}
}

func (t *dataTrace) add(kind traceKind, o Origin, rules []templates.Rule) {
	for _, r := range rules {
		ro := o
		ro.Peer = r.PeerName
		t.lists[kind] = append(t.lists[kind], ro)
	}
}

// bastionKey is the key that names a site's bastions.
func bastionKey(inv *inventory.Inventory, site string) string {
	if !inv.HasSites() {
		return "ssh.tunnel"
	}
	return "sites." + site + ".tunnel"
}

// The tags of a rule's strings: a number between two characters of
// Unicode's private use area, which no inventory value holds.
const (
	tagOpen  = "\uE000"
	tagClose = "\uE001"
)

var tagRE = regexp.MustCompile(tagOpen + `([0-9]+)` + tagClose)

func tag(s string, id int) string {
	if s == "" {
		return s // an empty string stays empty: a line it alone would make is dropped
	}
	return s + tagOpen + strconv.Itoa(id) + tagClose
}

// traceDoc finds the origin of each line of doc, the document pt renders
// from d: the rule whose tag the line carries in a rendering of d tagged,
// else own(line). exact is false when the tagged rendering, untagged, is
// not doc.
func traceDoc(pt *parsed, d templates.Data, tr *dataTrace, bastions string, doc []byte, own func(string) Origin) ([]Origin, bool) {
	lines := strings.Split(strings.TrimSuffix(string(doc), "\n"), "\n")
	origins := make([]Origin, len(lines))
	for i, l := range lines {
		origins[i] = own(l)
	}
	tagged, ids, ok := tagData(d, tr, bastions)
	if !ok {
		return origins, false
	}
	plain, err := templates.Render(pt.t, d)
	if err != nil || !bytes.Equal(plain, doc) {
		return origins, false
	}
	out, err := templates.Render(pt.t, tagged)
	if err != nil || !bytes.Equal(tagRE.ReplaceAll(out, nil), doc) {
		return origins, false
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		m := tagRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		id, _ := strconv.Atoi(m[1])
		o := ids[id]
		o.Template, o.TemplateLine = origins[i].Template, origins[i].TemplateLine
		origins[i] = o
	}
	return origins, true
}

// tagData returns d with every string of its traced rules and of its
// bastions tagged, and the origin of each tag. ok is false when the trace
// does not account for every rule.
func tagData(d templates.Data, tr *dataTrace, bastions string) (templates.Data, []Origin, bool) {
	var ids []Origin
	next := func(o Origin) int {
		ids = append(ids, o)
		return len(ids) - 1
	}
	lists := [traceKinds]*[]templates.Rule{
		traceIngress: &d.Ingress, traceCrossSite: &d.CrossSite, traceEgress: &d.Egress,
		traceTunnelReplies: &d.TunnelReplies, tracePublicTCP: &d.PublicTCP,
	}
	for kind, l := range lists {
		if len(*l) != len(tr.lists[kind]) {
			return d, nil, false
		}
		rules := slices.Clone(*l)
		for i := range rules {
			r, id := &rules[i], next(tr.lists[kind][i])
			r.Peer, r.Set, r.PeerName, r.Match = tag(r.Peer, id), tag(r.Set, id), tag(r.PeerName, id), tag(r.Match, id)
		}
		*l = rules
	}
	tagTunnel := func(b *templates.Tunnel) {
		id := next(Origin{Key: bastions, Peer: b.Name})
		b.Name, b.PublicIP, b.PrivateIP = tag(b.Name, id), tag(b.PublicIP, id), tag(b.PrivateIP, id)
	}
	d.Bastions = slices.Clone(d.Bastions)
	for i := range d.Bastions {
		tagTunnel(&d.Bastions[i])
	}
	if d.Tunnel.Name != "" {
		tagTunnel(&d.Tunnel)
	}
	return d, ids, true
}

// templateOrigin returns the origin of a line that a role's template
// writes by itself: the role's template key, and the line of the
// template, or of the blocks every template shares, that wrote it.
func templateOrigin(inv *inventory.Inventory, role *inventory.Role, pt *parsed) func(line string) Origin {
	type source struct{ file, text string }
	var sources []source
	if pt.src != "" {
		sources = append(sources, source{pt.file, pt.src})
	} else if text, ok := templates.Builtin(role.Template); ok {
		sources = append(sources, source{role.Template + ".tmpl", text})
	}
	sources = append(sources, source{templates.BaseFile, templates.BaseSource()})
	key := "roles." + role.Name + ".template"
	return func(line string) Origin {
		o := Origin{Key: key}
		for _, s := range sources {
			if n := templates.SourceLine(s.text, line); n > 0 {
				o.Template, o.TemplateLine = s.file, n
				break
			}
		}
		return o
	}
}
