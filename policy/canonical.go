package policy

import (
	"net/netip"
	"regexp"
	"strings"
)

var counters = regexp.MustCompile(`(\s*\[\d+:\d+\])+$`)

// Canonical reduces an iptables-save or iptables-restore document to its
// filter table as iptables-save prints it, without what changes from one
// save to the next: comments, blank lines and packet counters. Two
// rulesets that load into the same kernel state have the same canonical
// form when they were written the way iptables-save writes rules, as
// fwpush's templates are. One thing iptables-save leaves out is canonical
// here too: an address match on every address ("-s 0.0.0.0/0", "-d ::/0"),
// which a hand-written template may spell out. Tables other than filter are
// left out.
func Canonical(text string) string {
	var b strings.Builder
	inFilter := false
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			inFilter = line == "*filter"
		case !inFilter:
			continue
		case strings.HasPrefix(line, ":"):
			line = counters.ReplaceAllString(line, "")
		case strings.HasPrefix(line, "-A ") && strings.Contains(line, "/0"):
			line = dropAnyAddress(line)
		}
		if !inFilter {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
		if line == "COMMIT" {
			inFilter = false
		}
	}
	return b.String()
}

// dropAnyAddress removes the source and destination matches of a rule that
// match every address, as iptables-save does: "-s 0.0.0.0/0" is no match at
// all. A negated one ("! -s 0.0.0.0/0", matching nothing) stays.
func dropAnyAddress(line string) string {
	sp := spans(line)
	if sp == nil {
		return line // an unterminated quote: left for Parse to report
	}
	drop := make([]bool, len(sp))
	dropped := false
	for i := 0; i+1 < len(sp); i++ {
		switch line[sp[i][0]:sp[i][1]] {
		case "-s", "--source", "-d", "--destination":
		default:
			continue
		}
		if i > 0 && line[sp[i-1][0]:sp[i-1][1]] == "!" {
			continue
		}
		if anyAddress(line[sp[i+1][0]:sp[i+1][1]]) {
			drop[i], drop[i+1], dropped = true, true, true
		}
	}
	if !dropped {
		return line
	}
	var b strings.Builder
	for i, s := range sp {
		if drop[i] {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(line[s[0]:s[1]])
	}
	return b.String()
}

// anyAddress tells whether an address argument is a /0: every address.
func anyAddress(s string) bool {
	addr, ok := strings.CutSuffix(s, "/0")
	if !ok {
		return false
	}
	_, err := netip.ParseAddr(addr)
	return err == nil || addr == "0"
}

// spans returns where each word of a rule line starts and ends, quoted
// words whole, quotes included (see tokenize); nil when a quote is not
// closed.
func spans(line string) [][2]int {
	var out [][2]int
	start, inQuote := -1, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(line):
			i++
		case c == '"':
			inQuote = !inQuote
			if start < 0 {
				start = i
			}
		case (c == ' ' || c == '\t') && !inQuote:
			if start >= 0 {
				out = append(out, [2]int{start, i})
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if inQuote {
		return nil
	}
	if start >= 0 {
		out = append(out, [2]int{start, len(line)})
	}
	return out
}
