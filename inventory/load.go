package inventory

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// The TOML document as written. Values are decoded into plain types and
// checked by validate, so that every problem is reported at once rather
// than the first one a typed decoder trips over.
type rawFile struct {
	SSH        rawSSH             `toml:"ssh"`
	Interfaces rawInterfaces      `toml:"interfaces"`
	Hosts      map[string]rawHost `toml:"hosts"`
	Roles      map[string]rawRole `toml:"roles"`
}

type rawSSH struct {
	User          string `toml:"user"`
	Port          int    `toml:"port"`
	Identity      string `toml:"identity"`
	KnownHosts    string `toml:"known_hosts"`
	Tunnel        string `toml:"tunnel"`
	Parallel      int    `toml:"parallel"`
	Timeout       string `toml:"timeout"`
	RollbackAfter string `toml:"rollback_after"`
}

type rawInterfaces struct {
	Public  string `toml:"public"`
	Private string `toml:"private"`
}

type rawHost struct {
	Role         string `toml:"role"`
	PublicIP     string `toml:"public_ip"`
	PrivateIP    string `toml:"private_ip"`
	PublicIP6    string `toml:"public_ip6"`
	PublicIface  string `toml:"public_iface"`
	PrivateIface string `toml:"private_iface"`
	User         string `toml:"user"`
	Port         int    `toml:"port"`
}

type rawRole struct {
	Template   string     `toml:"template"`
	PublicTCP  []int      `toml:"public_tcp"`
	Allow      []rawAllow `toml:"allow"`
	LogDropped bool       `toml:"log_dropped"`
}

type rawAllow struct {
	From string `toml:"from"`
	TCP  []int  `toml:"tcp"`
	UDP  []int  `toml:"udp"`
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
// every problem found.
func Parse(name string, data []byte) (*Inventory, error) {
	var raw rawFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &Error{File: name, Problems: []Problem{{
				Line: perr.Position.Line, Col: perr.Position.Col, Key: perr.LastKey, Msg: perr.Message,
			}}}
		}
		// Type mismatches come back as plain errors that already say
		// "toml: line N (last key ...)".
		return nil, &Error{File: name, Problems: []Problem{{Msg: strings.TrimPrefix(err.Error(), "toml: ")}}}
	}
	v := &validator{file: name, lines: keyLines(string(data)), md: md}
	for _, k := range md.Undecoded() {
		v.unknownKey(k)
	}
	inv := v.build(name, &raw)
	if len(v.problems) > 0 {
		slices.SortStableFunc(v.problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, &Error{File: name, Problems: v.problems}
	}
	return inv, nil
}

// Error is an invalid inventory: every problem found, in file order.
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
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.format(e.File))
	}
	return b.String()
}

func (p Problem) format(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

func (v *validator) unknownKey(k toml.Key) {
	path := k.String()
	table := "the top level"
	if len(k) > 1 {
		table = "[" + toml.Key(k[:len(k)-1]).String() + "]"
	}
	msg := fmt.Sprintf("unknown key %q in %s", k[len(k)-1], table)
	if hint := suggest(k); hint != "" {
		msg += "; did you mean " + hint + "?"
	}
	v.problems = append(v.problems, Problem{Line: v.lines[path], Key: path, Msg: msg})
}

// knownKeys lists the keys each kind of table accepts, for suggestions.
var knownKeys = map[string][]string{
	"":           {"ssh", "interfaces", "hosts", "roles"},
	"ssh":        {"user", "port", "identity", "known_hosts", "tunnel", "parallel", "timeout", "rollback_after"},
	"interfaces": {"public", "private"},
	"host":       {"role", "public_ip", "private_ip", "public_ip6", "public_iface", "private_iface", "user", "port"},
	"role":       {"template", "public_tcp", "allow", "log_dropped"},
	"allow":      {"from", "tcp", "udp"},
}

// suggest names the known key closest to an unknown one, if any is close.
func suggest(k toml.Key) string {
	var kind string
	switch {
	case len(k) == 1:
		kind = ""
	case len(k) == 2 && (k[0] == "ssh" || k[0] == "interfaces"):
		kind = k[0]
	case len(k) == 3 && k[0] == "hosts":
		kind = "host"
	case len(k) == 3 && k[0] == "roles":
		kind = "role"
	case len(k) == 4 && k[0] == "roles" && k[2] == "allow":
		kind = "allow"
	default:
		return ""
	}
	bad := k[len(k)-1]
	best, bestDist := "", 3
	for _, cand := range knownKeys[kind] {
		if d := distance(bad, cand); d < bestDist {
			best, bestDist = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("%q", best)
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
