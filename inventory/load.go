package inventory

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// The TOML document as written. Values are decoded into plain types and
// checked by validate, so that every problem is reported at once rather
// than the first one a typed decoder trips over. Snapshot encodes the same
// types: the omitempty and omitzero tags, which the decoder ignores, keep
// out of a snapshot the keys left to their defaults, and the order of the
// fields is the order of a snapshot's tables and keys.
type rawFile struct {
	SSH        rawSSH             `toml:"ssh"`
	Interfaces rawInterfaces      `toml:"interfaces"`
	Firewall   rawFirewall        `toml:"firewall,omitempty"`
	Sites      map[string]rawSite `toml:"sites,omitempty"`
	Hosts      map[string]rawHost `toml:"hosts"`
	Roles      map[string]rawRole `toml:"roles"`
	// DigitalOcean is the source of hosts outside the file (see
	// source.go); the decoder leaves it zero when the file has none.
	DigitalOcean rawDigitalOcean `toml:"digitalocean,omitempty"`
}

// rawNames is a host name or a list of them ([ssh] tunnel, a site's
// tunnel): the decoder takes either, and validate checks which it got.
type rawNames any

type rawSite struct {
	Tunnel rawNames `toml:"tunnel"`
}

type rawSSH struct {
	User          string   `toml:"user,omitempty"`
	Port          int      `toml:"port,omitzero"`
	Identity      string   `toml:"identity,omitempty"`
	KnownHosts    string   `toml:"known_hosts,omitempty"`
	Tunnel        rawNames `toml:"tunnel,omitempty"`
	Parallel      int      `toml:"parallel"`
	Timeout       string   `toml:"timeout"`
	RollbackAfter string   `toml:"rollback_after"`
	Become        string   `toml:"become,omitempty"`
}

type rawInterfaces struct {
	Public  string `toml:"public"`
	Private string `toml:"private"`
}

type rawFirewall struct {
	Preserve []string `toml:"preserve"`
	Backend  string   `toml:"backend,omitempty"`
}

type rawHost struct {
	Role         string `toml:"role"`
	Site         string `toml:"site,omitempty"`
	PublicIP     string `toml:"public_ip,omitempty"`
	PrivateIP    string `toml:"private_ip,omitempty"`
	PublicIP6    string `toml:"public_ip6,omitempty"`
	PublicIface  string `toml:"public_iface,omitempty"`
	PrivateIface string `toml:"private_iface,omitempty"`
	User         string `toml:"user,omitempty"`
	Port         int    `toml:"port,omitzero"`
	Become       string `toml:"become,omitempty"`
	Source       string `toml:"source,omitempty"`
	Backend      string `toml:"backend,omitempty"`
}

type rawRole struct {
	Template   string     `toml:"template"`
	PublicTCP  []int      `toml:"public_tcp,omitempty"`
	Allow      []rawAllow `toml:"allow,omitempty"`
	LogDropped bool       `toml:"log_dropped,omitempty"`
	Preserve   []string   `toml:"preserve,omitempty"`
	Backend    string     `toml:"backend,omitempty"`
}

type rawAllow struct {
	From      string `toml:"from"`
	TCP       []int  `toml:"tcp,omitempty"`
	UDP       []int  `toml:"udp,omitempty"`
	CrossSite string `toml:"cross_site,omitempty"`
}

// Load reads and validates the inventory at path.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates an inventory. name is used in error messages
// and as the inventory's Path. The error, when not nil, is an *Error listing
// every problem found. An inventory that takes hosts from outside the file
// ([digitalocean]) is an error here: it needs Decode, the hosts read from
// the source, and Resolve.
func Parse(name string, data []byte) (*Inventory, error) {
	f, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	if f.DigitalOcean != nil {
		return nil, f.Invalid("digitalocean", "this inventory takes hosts from DigitalOcean, which this command does not read: give it a snapshot of the resolved inventory (fwpush hosts --inventory-snapshot FILE)")
	}
	return f.Resolve(nil, nil)
}

// decode decodes an inventory and checks what does not depend on its
// hosts. Its error is an inventory that cannot be built at all: bad TOML,
// values of the wrong type, keys in the wrong case. Other problems stay
// in the File, to be reported with those Resolve finds.
func decode(name string, data []byte) (*File, error) {
	// The decoder skips a UTF-8 byte order mark and counts offsets after
	// it; so must the line scanner.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var raw rawFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			// The decoder's line is one too far when the offending
			// character is a newline it has already read; its byte
			// offset is right.
			line, col := perr.Position.Line, perr.Position.Col
			if start := perr.Position.Start; start >= 0 && start <= len(data) {
				line = 1 + bytes.Count(data[:start], []byte("\n"))
				col = start - bytes.LastIndexByte(data[:start], '\n')
			}
			return nil, &Error{File: name, Problems: []Problem{{
				Line: line, Col: col, Key: perr.LastKey, Msg: perr.Message,
			}}}
		}
	}
	v := &validator{file: name, lines: keyLines(string(data)), md: md}
	if err != nil {
		v.decodeError(md, data, err)
		return nil, v.err()
	}
	if folded := v.unknownKeys(md.Keys(), md.Undecoded()); folded {
		// A key in the wrong case may have been decoded in place of the
		// right one: what was decoded is not what was meant, and only
		// the misspelt keys are reported.
		return nil, v.err()
	}
	f := &File{name: name, raw: &raw, v: v}
	f.DigitalOcean = v.digitalOcean(&raw)
	return f, nil
}

// err returns the problems recorded so far as an *Error, in file order.
func (v *validator) err() error {
	slices.SortStableFunc(v.problems, byLine)
	return &Error{File: v.file, Problems: v.problems}
}

func byLine(a, b Problem) int { return cmp.Compare(a.Line, b.Line) }

// finish returns the inventory built, or every problem found.
func (v *validator) finish(inv *Inventory) (*Inventory, error) {
	if len(v.problems) > 0 {
		// Warnings are left out: about an invalid inventory they mislead
		// (a misspelt "tcp" makes its allow entry a duplicate).
		return nil, v.err()
	}
	slices.SortStableFunc(v.warnings, byLine)
	inv.Warnings = v.warnings
	inv.lines = v.lines
	return inv, nil
}

// Error is an invalid inventory: every problem found, in file order. It
// may hold warnings too, next to the errors that make it invalid.
type Error struct {
	File     string
	Problems []Problem
}

// Problem is one mistake in an inventory. Line is 0 when it is not known.
type Problem struct {
	Line int
	Col  int
	Key  string
	Msg  string
	// Warning marks a problem that does not make the inventory invalid: a
	// key that has no effect, or one that is probably not what was meant.
	Warning bool
	// Source names where a host that is not written in the file came from
	// ("digitalocean droplet 1234 (tag app)"), for a problem of such a
	// host: it has no line.
	Source string
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Format(e.File))
	}
	return b.String()
}

// Format writes the problem as one line, "file:line: key: message", with
// "warning: " before the message of a warning; line and key are left out
// when unknown.
func (p Problem) Format(file string) string {
	var b strings.Builder
	b.WriteString(oneLine(file))
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(oneLine(p.Key))
		if p.Source != "" {
			b.WriteString(" (" + oneLine(p.Source) + ")")
		}
		b.WriteString(": ")
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(oneLine(p.Msg))
	return b.String()
}

// oneLine escapes control characters, which the decoder's messages quote
// from the input as they are, so that every problem stays on one line.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// decodeError reports a document that parsed but did not decode: values of
// the wrong type. The decoder stops at whichever one it meets first, in map
// order, and names it without the index of the array element it is in; so
// they are all looked for, with their lines, and the decoder's own message
// is the last resort. Unknown keys are reported too: every key has been
// parsed, but Undecoded means nothing after a failed decode.
func (v *validator) decodeError(md toml.MetaData, data []byte, err error) {
	v.unknownKeys(md.Keys(), nil)
	n := len(v.problems)
	var doc map[string]any
	if _, derr := toml.Decode(string(data), &doc); derr == nil {
		v.wrongTypes(doc, reflect.TypeFor[rawFile](), "")
	}
	if len(v.problems) == n {
		v.problems = append(v.problems, Problem{Msg: strings.TrimPrefix(err.Error(), "toml: ")})
	}
}

// wrongTypes walks a document decoded without a schema alongside the type
// it is decoded into, and reports every value of the wrong type. Keys match
// fields as the decoder matches them: by tag, then regardless of case.
func (v *validator) wrongTypes(val any, t reflect.Type, path string) {
	if t == reflect.TypeFor[rawNames]() {
		_, _ = v.names(path, val)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			v.wrongType(path, "a table", val)
			return
		}
		for _, k := range sortedKeys(m) {
			if f, ok := field(t, k); ok {
				v.wrongTypes(m[k], f.Type, join(path, k))
			}
		}
	case reflect.Map:
		m, ok := val.(map[string]any)
		if !ok {
			v.wrongType(path, "a table", val)
			return
		}
		for _, k := range sortedKeys(m) {
			v.wrongTypes(m[k], t.Elem(), join(path, k))
		}
	case reflect.Slice:
		var elems []any
		switch a := val.(type) {
		case []any:
			elems = a
		case []map[string]any:
			for _, e := range a {
				elems = append(elems, e)
			}
		default:
			v.wrongType(path, "an array", val)
			return
		}
		for i, e := range elems {
			v.wrongTypes(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if _, ok := val.(string); !ok {
			v.wrongType(path, "a string", val)
		}
	case reflect.Int:
		if _, ok := val.(int64); !ok {
			v.wrongType(path, "an integer", val)
		}
	case reflect.Bool:
		if _, ok := val.(bool); !ok {
			v.wrongType(path, "a boolean", val)
		}
	}
}

func (v *validator) wrongType(path, want string, got any) {
	var found string
	switch got.(type) {
	case string:
		found = "a string"
	case int64:
		found = "an integer"
	case float64:
		found = "a float"
	case bool:
		found = "a boolean"
	case time.Time:
		found = "a date-time"
	case []any, []map[string]any:
		found = "an array"
	case map[string]any:
		found = "a table"
	default:
		found = fmt.Sprintf("%T", got)
	}
	v.errorf(path, "wrong type: expected %s, found %s", want, found)
}

// field finds the struct field a key decodes into.
func field(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	folded := false
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case tag == key:
			return f, true
		case !folded && strings.EqualFold(tag, key):
			fold, folded = f, true
		}
	}
	return fold, folded
}

// unknownKeys reports the keys nothing decoded, and those the schema does
// not know as written: the decoder matches field names regardless of case,
// so "TCP" would silently replace "tcp". Inside an unknown table only the
// table itself is reported, not every key it holds again. It tells whether
// some key was such a case variant: then which of two spellings the decoder
// kept depends on map order.
func (v *validator) unknownKeys(keys, undecoded []toml.Key) (folded bool) {
	isUndecoded := map[string]bool{}
	for _, k := range undecoded {
		isUndecoded[k.String()] = true
	}
	reported := map[string]bool{}
	seen := map[string]int{}
	for _, k := range keys {
		u, unknown := unknownPart(k)
		if !unknown && !isUndecoded[k.String()] {
			continue
		}
		if len(u) < len(k) && reported[u.String()] {
			continue
		}
		reported[u.String()] = true
		n := seen[u.String()]
		seen[u.String()]++
		v.unknownKey(u, n)
		folded = folded || folds(u)
	}
	return folded
}

// unknownPart shortens k to its first part the schema does not know, if
// there is one.
func unknownPart(k toml.Key) (toml.Key, bool) {
	for i := range k {
		var kind string
		switch {
		case i == 0:
			kind = ""
		case i == 1 && (k[0] == "ssh" || k[0] == "interfaces" || k[0] == "firewall" || k[0] == "digitalocean"):
			kind = k[0]
		case i == 2 && k[0] == "digitalocean" && (k[1] == "roles" || k[1] == "sites"):
			continue // a tag or a region
		case i == 1 && (k[0] == "hosts" || k[0] == "roles" || k[0] == "sites"):
			continue // a host, role or site name
		case i == 2 && k[0] == "hosts":
			kind = "host"
		case i == 2 && k[0] == "roles":
			kind = "role"
		case i == 2 && k[0] == "sites":
			kind = "site"
		case i == 3 && k[0] == "roles" && k[2] == "allow":
			kind = "allow"
		default:
			return k[:i+1], true
		}
		if !slices.Contains(knownKeys[kind], k[i]) {
			return k[:i+1], true
		}
	}
	return k, false
}

// unknownKey reports k, the nth unknown key of that name. toml.MetaData
// names keys inside an array without the element's index, so the element
// is found by counting: the nth occurrence is in the nth element that has it.
func (v *validator) unknownKey(k toml.Key, nth int) {
	path, display := strings.Join(k, "."), k.String()
	table := "the top level"
	if len(k) > 1 {
		parent := k[:len(k)-1]
		table = "[" + parent.String() + "]"
		for i, n := 0, 0; ; i++ {
			elem := fmt.Sprintf("%s[%d]", strings.Join(parent, "."), i)
			if _, ok := v.lines[elem]; !ok {
				break
			}
			if _, ok := v.lines[elem+"."+k[len(k)-1]]; ok {
				if n == nth {
					table = fmt.Sprintf("%s[%d]", parent.String(), i)
					path, display = elem+"."+k[len(k)-1], table+"."+toml.Key(k[len(k)-1:]).String()
					break
				}
				n++
			}
		}
	}
	msg := fmt.Sprintf("unknown key %q in %s", k[len(k)-1], table)
	if hint := suggest(k); hint != "" {
		msg += "; did you mean " + hint + "?"
	}
	v.problems = append(v.problems, Problem{Line: v.lines[path], Key: display, Msg: msg})
}

// knownKeys lists the keys each kind of table accepts, for suggestions.
var knownKeys = map[string][]string{
	"":             {"ssh", "interfaces", "firewall", "hosts", "roles", "sites", "digitalocean"},
	"digitalocean": {"token_env", "roles", "endpoint", "sites"},
	"ssh":          {"user", "port", "identity", "known_hosts", "tunnel", "parallel", "timeout", "rollback_after", "become"},
	"interfaces":   {"public", "private"},
	"firewall":     {"preserve", "backend"},
	"host":         {"role", "site", "public_ip", "private_ip", "public_ip6", "public_iface", "private_iface", "user", "port", "become", "source", "backend"},
	"role":         {"template", "public_tcp", "allow", "log_dropped", "preserve", "backend"},
	"allow":        {"from", "tcp", "udp", "cross_site"},
	"site":         {"tunnel"},
}

// keyKind names the kind of table k is a key of, in knownKeys.
func keyKind(k toml.Key) (string, bool) {
	switch {
	case len(k) == 1:
		return "", true
	case len(k) == 2 && (k[0] == "ssh" || k[0] == "interfaces" || k[0] == "firewall" || k[0] == "digitalocean"):
		return k[0], true
	case len(k) == 3 && k[0] == "hosts":
		return "host", true
	case len(k) == 3 && k[0] == "roles":
		return "role", true
	case len(k) == 3 && k[0] == "sites":
		return "site", true
	case len(k) == 4 && k[0] == "roles" && k[2] == "allow":
		return "allow", true
	}
	return "", false
}

// folds tells whether k is a known key spelled in another case, which the
// decoder takes for the known one.
func folds(k toml.Key) bool {
	kind, ok := keyKind(k)
	return ok && slices.ContainsFunc(knownKeys[kind], func(known string) bool { return strings.EqualFold(known, k[len(k)-1]) })
}

// suggest names the known key closest to an unknown one, if any is close.
func suggest(k toml.Key) string {
	kind, ok := keyKind(k)
	if !ok {
		return ""
	}
	best := closest(strings.ToLower(k[len(k)-1]), knownKeys[kind], 2)
	if best == "" {
		return ""
	}
	return fmt.Sprintf("%q", best)
}

// closest returns the first of names nearest to bad, if any is near
// enough to be a typo of it (at most within edits away), else "".
func closest(bad string, names []string, within int) string {
	best, bestDist := "", within+1
	for _, cand := range names {
		if d := distance(bad, cand); d < bestDist {
			best, bestDist = cand, d
		}
	}
	return best
}

// distance is the Levenshtein distance between two short strings.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
