package templates

import "strings"

// SourceLine finds the line of a template's source that wrote a rendered
// line, so that an error about the rendered policy (iptables-restore
// refusing its line 14) can name the template line to fix. It compares the
// literal text of each source line, what lies outside its {{actions}}, with
// the rendered line, and returns the line whose literal text matches the
// most; 0 when no line matches or when two lines match equally well (the
// same rule written in both an IPv4 and an IPv6 branch, say). A line made
// of actions only matches nothing: its output cannot be told from its text.
func SourceLine(src, rendered string) int {
	rendered = strings.TrimSpace(rendered)
	if rendered == "" {
		return 0
	}
	best, bestScore, tie := 0, 0, false
	for i, frags := range literals(src) {
		score := matchScore(frags, rendered)
		switch {
		case score > bestScore:
			best, bestScore, tie = i+1, score, false
		case score == bestScore && score > 0:
			tie = true
		}
	}
	if tie {
		return 0
	}
	return best
}

// fragment is a run of literal text on one source line. Open and close
// say whether it starts the line's text and ends it (no action before or
// after it on that line).
type fragment struct {
	text        string
	open, close bool
}

// literals splits a template's source into lines of literal fragments,
// leaving out actions, which may span lines ({{/* comments */}}, say).
func literals(src string) [][]fragment {
	var lines [][]fragment
	var cur []fragment
	var text strings.Builder
	open := true // no action yet on this line
	flush := func(close bool) {
		if t := strings.TrimSpace(text.String()); t != "" {
			cur = append(cur, fragment{text: t, open: open, close: close})
		}
		text.Reset()
	}
	inAction := false
	for i := 0; i < len(src); i++ {
		switch {
		case !inAction && strings.HasPrefix(src[i:], "{{"):
			flush(false)
			inAction, open = true, false
			i++
		case inAction && strings.HasPrefix(src[i:], "}}"):
			inAction = false
			i++
		case src[i] == '\n':
			if !inAction {
				flush(true)
			}
			lines = append(lines, cur)
			cur, open = nil, !inAction
		case !inAction:
			text.WriteByte(src[i])
		}
	}
	if !inAction {
		flush(true)
	}
	return append(lines, cur)
}

// matchScore is how much literal text of a source line is found, in
// order, in a rendered line: 0 unless all of it is.
func matchScore(frags []fragment, rendered string) int {
	score, rest := 0, rendered
	for k, f := range frags {
		switch {
		case k == 0 && f.open && !strings.HasPrefix(rest, f.text):
			return 0
		case k == len(frags)-1 && f.close && !strings.HasSuffix(rest, f.text):
			return 0
		}
		i := strings.Index(rest, f.text)
		if i < 0 {
			return 0
		}
		rest = rest[i+len(f.text):]
		score += len(f.text)
	}
	return score
}
