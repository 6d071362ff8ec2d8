package policy

import (
	"regexp"
	"strings"
)

var counters = regexp.MustCompile(`\s*\[\d+:\d+\]$`)

// Canonical reduces an iptables-save or iptables-restore document to its
// filter table as iptables-save prints it, without what changes from one
// save to the next: comments, blank lines and packet counters. Two
// rulesets that load into the same kernel state have the same canonical
// form when they were written the way iptables-save writes rules, as
// fwpush's templates are. Tables other than filter are left out.
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
