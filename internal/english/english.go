// Package english spells the counts fwpush's messages hold: "1 host",
// "2 hosts", "3 mismatches".
package english

import "strconv"

// Count spells n of a thing: "1 host", "0 hosts", "2 hosts". The plural
// adds an s to one, unless many gives it ("mismatch", "mismatches").
func Count(n int, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	plural := one + "s"
	if len(many) > 0 {
		plural = many[0]
	}
	return strconv.Itoa(n) + " " + plural
}
