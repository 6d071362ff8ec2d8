package nft

import (
	"strings"
)

// Document is the nft -f input that makes a host's table the policy's.
type Document struct {
	Text []byte
	// Lines are the origins of each line of Text that is a rule, by line
	// number: the lines of the policy's documents it translates.
	Lines map[int][]Origin
}

// Origins returns the lines of the policy's documents that line n of the
// document translates; none for a line that is no rule.
func (d Document) Origins(n int) []Origin { return d.Lines[n] }

// Preamble begins every document: the table is created if it is not
// there, then deleted, then made anew, in one transaction (nft -f applies
// a file whole or not at all): whatever the table held before, by hand
// or by an earlier policy, is gone, and nothing outside it is touched.
const Preamble = "table " + Table + " {}\ndelete table " + Table + "\n"

// Document renders the table as nft -f loads it, after a comment (one
// line, or none for "").
func (rs *Ruleset) Document(comment string) Document {
	var b strings.Builder
	d := Document{Lines: map[int][]Origin{}}
	n := 0
	line := func(s string, from []Origin) {
		b.WriteString(s)
		b.WriteByte('\n')
		n++
		if from != nil {
			d.Lines[n] = from
		}
	}
	if comment != "" {
		line("# "+strings.ReplaceAll(comment, "\n", " "), nil)
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(Preamble, "\n"), "\n") {
		line(l, nil)
	}
	rs.write(line, false)
	d.Text = []byte(b.String())
	return d
}

// Canonical is the table as nft lists it once loaded, in the canonical
// form Canonical gives the listing.
func (rs *Ruleset) Canonical() string {
	var b strings.Builder
	rs.write(func(s string, _ []Origin) {
		b.WriteString(s)
		b.WriteByte('\n')
	}, true)
	return b.String()
}

// write writes the table a line at a time: as loaded, or as listed.
func (rs *Ruleset) write(line func(string, []Origin), listed bool) {
	line("table "+Table+" {", nil)
	for _, s := range rs.Sets {
		line("\tset "+s.Name+" {", nil)
		line("\t\ttype "+s.Type, nil)
		if s.Interval {
			line("\t\tflags interval", nil)
		}
		if len(s.Elements) > 0 {
			line("\t\telements = {", nil)
			for _, e := range s.Elements {
				line("\t\t\t"+e+",", nil)
			}
			line("\t\t}", nil)
		}
		line("\t}", nil)
	}
	for _, c := range rs.Chains {
		line("\tchain "+c.Name+" {", nil)
		if c.Hook != "" {
			line("\t\ttype filter hook "+c.Hook+" priority filter; policy "+c.Policy+";", nil)
		}
		for _, r := range c.Rules {
			text := r.Load
			if listed {
				text = r.Show
			}
			from := r.From
			if from == nil {
				from = []Origin{}
			}
			line("\t\t"+text, from)
		}
		line("\t}", nil)
	}
	line("}", nil)
}
