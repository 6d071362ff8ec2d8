package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Canonical reads what `nft list table inet fwpush` prints (or a
// document's table, or a canonical form) and writes it in the canonical
// form, without what changes from one listing to the next or between
// versions of nft: handles, counters' values, blank lines, indentation,
// how set elements are wrapped and ordered, and the order of sets and
// chains (sets by name, then the base chains in hook order, then the
// other chains by name). A table fwpush loaded and the policy it was
// rendered from (Ruleset.Canonical) have the same canonical form. An
// empty listing (no table) is "".
func Canonical(listing string) (string, error) {
	t, err := parseTable(listing)
	if err != nil || t == nil {
		return "", err
	}
	return t.String(), nil
}

// table is a listed table, read.
type table struct {
	header string   // "table inet fwpush {"
	attrs  []string // the table's own lines (flags, comment)
	blocks []*block
}

// block is a set, chain or other object of a table.
type block struct {
	kind, name string
	header     string   // "set NAME {"
	lines      []string // its lines but elements, normalised
	elements   []string // a set's or map's elements
	hook       string   // a base chain's hook
}

var (
	handle   = regexp.MustCompile(`\s*# handle \d+$`)
	counters = regexp.MustCompile(`\bcounter packets \d+ bytes \d+`)
	hookRE   = regexp.MustCompile(`^type \S+ hook (\S+) `)
)

// parseTable reads the one table of a listing; nil for an empty one.
func parseTable(text string) (*table, error) {
	lines, err := logicalLines(text)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, nil
	}
	if !strings.HasPrefix(lines[0], "table ") || !strings.HasSuffix(lines[0], "{") {
		return nil, fmt.Errorf("listing begins with %q, not a table", lines[0])
	}
	t := &table{header: lines[0]}
	var cur *block
	done := false
	for _, l := range lines[1:] {
		switch {
		case done:
			return nil, fmt.Errorf("%q after the end of the table", l)
		case l == "}" && cur == nil:
			done = true
		case l == "}":
			t.blocks = append(t.blocks, cur)
			cur = nil
		case cur == nil && strings.HasSuffix(l, "{"):
			f := strings.Fields(l)
			cur = &block{kind: f[0], header: l}
			if len(f) >= 3 {
				cur.name = f[len(f)-2]
			}
		case cur == nil:
			t.attrs = append(t.attrs, l)
		case strings.HasPrefix(l, "elements = {"):
			cur.elements = append(cur.elements, splitElements(l)...)
		default:
			if m := hookRE.FindStringSubmatch(l); m != nil && cur.kind == "chain" && len(cur.lines) == 0 {
				cur.hook = m[1]
			}
			cur.lines = append(cur.lines, l)
		}
	}
	if !done {
		return nil, fmt.Errorf("the table does not end")
	}
	return t, nil
}

// logicalLines splits a listing into its lines, trimmed and with spaces
// collapsed outside quotes, without handles, comments and blank lines,
// counters without their values, and each line that an opened brace
// carries on (a set's elements, wrapped) joined into one.
func logicalLines(text string) ([]string, error) {
	var out []string
	var pending strings.Builder
	depth := 0
	for raw := range strings.SplitSeq(text, "\n") {
		l := handle.ReplaceAllString(strings.TrimSpace(raw), "")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = counters.ReplaceAllString(collapse(l), "counter")
		opener := strings.HasSuffix(l, "{") && !strings.HasPrefix(l, "elements") && depth == 0
		if opener || depth == 0 && pending.Len() == 0 && braces(l) == 0 {
			out = append(out, l)
			continue
		}
		if pending.Len() > 0 {
			pending.WriteByte(' ')
		}
		pending.WriteString(l)
		depth += braces(l)
		if depth <= 0 {
			out = append(out, collapse(pending.String()))
			pending.Reset()
			depth = 0
		}
	}
	if pending.Len() > 0 {
		return nil, fmt.Errorf("a brace is not closed: %q", pending.String())
	}
	return out, nil
}

// braces counts the braces a line opens, less those it closes, outside
// quotes.
func braces(l string) int {
	n, quoted := 0, false
	for _, c := range l {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '{':
			n++
		case c == '}':
			n--
		}
	}
	return n
}

// collapse makes every run of blanks outside quotes one space.
func collapse(l string) string {
	var b strings.Builder
	quoted, space := false, false
	for _, c := range l {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '\t'):
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(c)
	}
	return b.String()
}

// splitElements reads "elements = { a, b, c }" (as one line), a trailing
// comma or not.
func splitElements(l string) []string {
	body := strings.TrimSpace(strings.TrimPrefix(l, "elements = "))
	body = strings.TrimSuffix(strings.TrimPrefix(body, "{"), "}")
	var out []string
	depth, quoted, start := 0, false, 0
	for i, c := range body {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '{':
			depth++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, body[start:i])
			start = i + 1
		}
	}
	out = append(out, body[start:])
	out = slices.DeleteFunc(out, func(e string) bool { return strings.TrimSpace(e) == "" })
	for i, e := range out {
		out[i] = strings.TrimSpace(e)
	}
	return out
}

// compareElements orders elements: addresses and networks first, in
// their order, then the rest as text.
func compareElements(a, b string) int {
	pa, ea := elementPrefix(a)
	pb, eb := elementPrefix(b)
	switch {
	case ea == nil && eb == nil:
		return cmp.Or(pa.Addr().Compare(pb.Addr()), cmp.Compare(pa.Bits(), pb.Bits()))
	case ea == nil:
		return -1
	case eb == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func elementPrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// rank orders a table's blocks: sets, base chains by hook, other chains,
// then anything else.
func (b *block) rank() int {
	switch {
	case b.kind == "set":
		return 0
	case b.kind == "chain" && b.hook != "":
		if i := slices.Index(hookOrder, b.hook); i >= 0 {
			return 1 + i
		}
		return 1 + len(hookOrder)
	case b.kind == "chain":
		return 2 + len(hookOrder)
	}
	return 3 + len(hookOrder)
}

// String writes the table in the canonical form (see Ruleset.write).
func (t *table) String() string {
	blocks := slices.Clone(t.blocks)
	slices.SortStableFunc(blocks, func(a, b *block) int {
		return cmp.Or(cmp.Compare(a.rank(), b.rank()), strings.Compare(a.name, b.name), strings.Compare(a.header, b.header))
	})
	var b strings.Builder
	b.WriteString(t.header + "\n")
	for _, a := range t.attrs {
		b.WriteString("\t" + a + "\n")
	}
	for _, blk := range blocks {
		b.WriteString("\t" + blk.header + "\n")
		for _, l := range blk.lines {
			b.WriteString("\t\t" + l + "\n")
		}
		if len(blk.elements) > 0 {
			els := slices.Clone(blk.elements)
			slices.SortFunc(els, compareElements)
			b.WriteString("\t\telements = {\n")
			for _, e := range slices.Compact(els) {
				b.WriteString("\t\t\t" + e + ",\n")
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Count counts what the canonical table want adds to the canonical
// table live and what it removes from it: rules, chains' types and
// policies, and set elements, each once per time it is written.
func Count(live, want string) (added, removed int) {
	count := map[string]int{}
	for _, side := range []struct {
		text string
		n    int
	}{{live, -1}, {want, 1}} {
		t, err := parseTable(side.text)
		if err != nil || t == nil {
			continue
		}
		for _, blk := range t.blocks {
			for _, l := range blk.lines {
				if blk.kind == "set" {
					continue // its type and flags come and go with it
				}
				count[blk.header+"\x00"+l] += side.n
			}
			for _, e := range blk.elements {
				count[blk.header+"\x00"+e] += side.n
			}
		}
	}
	for _, n := range count {
		if n > 0 {
			added += n
		} else {
			removed -= n
		}
	}
	return added, removed
}
