// Package history is the record each managed host keeps of what fwpush
// changed on it: one JSON line per change in /var/lib/fwpush/history,
// appended by the host in the round trip that learns how the change
// ended (see runner/remote), and read back, merged across the fleet, by
// fwpush history. It decides the shape of a line, which the controller
// builds and the host completes with its clock and the outcome, and how
// lines are read, merged and filtered. It has no effects.
package history

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Path is the history on a host; Path + ".1" is the one before it,
// rotated away when it grew past MaxBytes.
const Path = "/var/lib/fwpush/history"

// MaxBytes is the size past which a host rotates its history: the file
// is renamed to history.1 (replacing the one before) before the next line
// is appended, so that a host keeps at most about twice this. At a few
// hundred bytes a line, that is a thousand changes or more.
const MaxBytes = 256 << 10

// The outcomes of a change, as a line says them: the keys of the run's
// statuses (see runner.Status.Key).
const (
	Applied       = "applied"
	DriftRepaired = "drift_repaired"
	RolledBack    = "rolled_back"
	Failed        = "failed"
)

// Entry is one line of a host's history.
type Entry struct {
	// Time is when the host recorded the change, by its own clock (UTC).
	Time time.Time `json:"time"`
	// Outcome is how the change ended: Applied, DriftRepaired, RolledBack
	// or Failed.
	Outcome string `json:"outcome"`
	// Host is the host's name in the inventory of the run.
	Host string `json:"host"`
	// Who ran fwpush: "user@machine", as the host lock names the run.
	Who string `json:"who"`
	// Version is fwpush's version.
	Version string `json:"version"`
	// Inventory is the digest of the fleet the run resolved (see
	// inventory.Inventory.Digest), Policy the digest of the policy it
	// applied (see change.Digest).
	Inventory string `json:"inventory"`
	Policy    string `json:"policy"`
	// Added and Removed count the rules the change adds and removes.
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Joined and Left are the hosts that joined and left the fleet since
	// the run before (see Members), when any did.
	Joined []string `json:"joined,omitempty"`
	Left   []string `json:"left,omitempty"`
}

// Run is what every line of one run shares.
type Run struct {
	Who, Version, Inventory string
	Joined, Left            []string
}

// Entry is the line of run r for a change on host, without its time and
// outcome, which the host gives.
func (r Run) Entry(host, policy string, added, removed int) Entry {
	return Entry{Host: host, Who: r.Who, Version: r.Version, Inventory: r.Inventory, Policy: policy,
		Added: added, Removed: removed, Joined: r.Joined, Left: r.Left}
}

// Body is the part of e's line that the controller sends: the JSON
// object without its opening brace and its time and outcome, printable
// ASCII only (anything else escaped), on one line. The host writes
// {"time":"T","outcome":"O", then Body, then a newline.
func (e Entry) Body() []byte {
	v := struct {
		Host      string   `json:"host"`
		Who       string   `json:"who"`
		Version   string   `json:"version"`
		Inventory string   `json:"inventory"`
		Policy    string   `json:"policy"`
		Added     int      `json:"added"`
		Removed   int      `json:"removed"`
		Joined    []string `json:"joined,omitempty"`
		Left      []string `json:"left,omitempty"`
	}{e.Host, e.Who, e.Version, e.Inventory, e.Policy, e.Added, e.Removed, e.Joined, e.Left}
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and ints only
	}
	return ascii(data[1:])
}

// ascii escapes what is not printable ASCII in a JSON text as \uXXXX, so
// that the host's shell, which counts bytes or characters as its locale
// says, sees one byte per character. json.Marshal has escaped the control
// characters already, and marks invalid UTF-8 as U+FFFD.
func ascii(data []byte) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		data = data[n:]
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := surrogates(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.Bytes()
}

// surrogates is r as a UTF-16 surrogate pair.
func surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// Parse reads a host's history, the lines of history.1 then history:
// its entries, and how many lines could not be read (a line cut short by
// a full disk, say), which are left out. Host is set where a line lacks
// it.
func Parse(host string, data []byte) ([]Entry, int) {
	var out []Entry
	bad := 0
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil || e.Time.IsZero() || e.Outcome == "" {
			bad++
			continue
		}
		e.Host = cmp.Or(e.Host, host)
		out = append(out, e)
	}
	return out, bad
}

// Merge merges the histories of several hosts into one, in time order
// (a host's own lines keep their order where times tie).
func Merge(lists ...[]Entry) []Entry {
	var out []Entry
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Time.Compare(b.Time) })
	return out
}

// Filter keeps the entries at or after since (none when zero), and of
// those the last limit (all when limit is 0).
func Filter(entries []Entry, since time.Time, limit int) []Entry {
	i := 0
	if !since.IsZero() {
		i, _ = slices.BinarySearchFunc(entries, since, func(e Entry, t time.Time) int { return e.Time.Compare(t) })
	}
	entries = entries[i:]
	if limit > 0 && len(entries) > limit {
		entries = entries[len(entries)-limit:]
	}
	return entries
}

// ParseSince reads --since: a duration back from now, in Go's units
// ("36h", "90m") or in days and weeks ("7d", "2w"), or a date ("2026-12-01")
// or a time (RFC 3339).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); unit == "d" || unit == "w" {
		days, err := strconv.Atoi(n)
		if err == nil && days >= 0 {
			if unit == "w" {
				days *= 7
			}
			return now.AddDate(0, 0, -days), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, errors.New("want a duration back from now (7d, 2w, 36h, 90m), a date (2026-12-01) or a time (2026-12-01T09:00:00Z)")
	}
	return now.Add(-d), nil
}

// Short is a digest as tables show it: its first 12 hexadecimal digits.
func Short(digest string) string {
	_, hex, ok := strings.Cut(digest, ":")
	if !ok {
		hex = digest
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}
