package inventory

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

// lineDocs are TOML documents that a naive line scanner gets wrong. Each
// must be accepted by the parser (checked below), because keyLines only
// has to follow documents the parser has already accepted.
var lineDocs = []struct {
	name string
	src  string
	// want lists the keys to locate; keys absent from want are not
	// checked, keys mapped to 0 must not be located at all.
	want map[string]int
}{
	{
		name: "comments and strings holding brackets, quotes and hashes",
		src: `# [not.a.table] "nor a string
[ssh] # [also.not] 'a table'
user = "root" # "quoted" [x] = 1
tunnel = "a # not a comment [b]"
identity = 'C:\keys\id' # a literal string keeps its backslash
known_hosts = "a\"b [c] # d" # x = 1`,
		want: map[string]int{
			"ssh":             2,
			"ssh.user":        3,
			"ssh.tunnel":      4,
			"ssh.identity":    5,
			"ssh.known_hosts": 6,
			"not.a.table":     0,
			"also.not":        0,
			"x":               0,
			"b":               0,
		},
	},
	{
		name: "multi-line array of inline tables",
		src: `[roles.app]
template = "private"
allow = [
  { from = "lb", tcp = [80] },   # [x] {y = 1}
  # { from = "commented" },
  { from = "app" },
  { from = "db",
    tcp = [
      3306, # mysql
      33060,
    ] },
  { from = "198.51.100.0/24", udp = [
    161 ] },
]
log_dropped = true
`,
		want: map[string]int{
			"roles":                     1,
			"roles.app":                 1,
			"roles.app.template":        2,
			"roles.app.allow":           3,
			"roles.app.allow[0]":        4,
			"roles.app.allow[0].from":   4,
			"roles.app.allow[0].tcp":    4,
			"roles.app.allow[0].tcp[0]": 4,
			"roles.app.allow[1]":        6,
			"roles.app.allow[1].from":   6,
			"roles.app.allow[2].from":   7,
			"roles.app.allow[2].tcp":    8,
			"roles.app.allow[2].tcp[0]": 9,
			"roles.app.allow[2].tcp[1]": 10,
			"roles.app.allow[3].udp":    12,
			"roles.app.allow[3].udp[0]": 13,
			"roles.app.log_dropped":     15,
			// The index-free aliases toml.MetaData uses name the first
			// occurrence.
			"roles.app.allow.from": 4,
			"roles.app.allow.tcp":  4,
			"roles.app.allow.udp":  12,
			"x":                    0,
			"roles.app.allow[4]":   0,
		},
	},
	{
		name: "quoted and dotted keys",
		src: `[hosts."web.1"]
role = "app"
[ hosts . 'db-1' ]
"private_ip" = "198.18.0.2"
[hosts]
tunnel-1.role = "tunnel"
tunnel-1 . "public_ip" = "203.0.113.1"
"a\"b" = { role = "x", 'port' = 22 }
"\u0061pi" = { role = "api" }
roles.lb.template = "public"
"\e[1m\\e" = { role = "bold" }
`,
		want: map[string]int{
			"hosts":                    1,
			"hosts.web.1":              1,
			"hosts.web.1.role":         2,
			"hosts.db-1":               3,
			"hosts.db-1.private_ip":    4,
			"hosts.tunnel-1":           6,
			"hosts.tunnel-1.role":      6,
			"hosts.tunnel-1.public_ip": 7,
			`hosts.a"b`:                8,
			`hosts.a"b.role`:           8,
			`hosts.a"b.port`:           8,
			"hosts.api":                9,
			"hosts.api.role":           9,
			"hosts.roles.lb.template":  10,
			"hosts.roles":              10,
			"roles.lb.template":        0,
			"hosts.\x1b[1m\\e":         11,
		},
	},
	{
		name: "multi-line strings",
		src: `[ssh]
user = """
root [x]
# not a comment
key = "not a key"
"""
identity = '''
~/.ssh/id "ed25519" '''
tunnel = """t"""""
port = 22
known_hosts = """a\"""b\
  c"""
timeout = '''x'''''
parallel = 3
rollback_after = ""
`,
		want: map[string]int{
			"ssh.user":           2,
			"ssh.key":            0,
			"ssh.identity":       7,
			"ssh.tunnel":         9,
			"ssh.port":           10,
			"ssh.known_hosts":    11,
			"ssh.timeout":        13,
			"ssh.parallel":       14,
			"ssh.rollback_after": 15,
		},
	},
	{
		name: "array tables",
		src: `[[roles.app.allow]]
from = "lb"
tcp = [80]

[[ roles.app.allow ]] # a second entry
from = "app"

[roles.db]
template = "private"
[[roles.db.allow]]
from = "app"
`,
		want: map[string]int{
			"roles":                   1,
			"roles.app":               1,
			"roles.app.allow":         1,
			"roles.app.allow[0]":      1,
			"roles.app.allow[0].from": 2,
			"roles.app.allow[0].tcp":  3,
			"roles.app.allow[1]":      5,
			"roles.app.allow[1].from": 6,
			"roles.app.allow.from":    2,
			"roles.db":                8,
			"roles.db.template":       9,
			"roles.db.allow[0]":       10,
			"roles.db.allow[0].from":  11,
		},
	},
	{
		name: "CRLF line ends and tabs",
		src:  "[ssh]\r\n\tuser\t=\t\"root\"\r\n\r\n[hosts.t]\r\nrole = \"tunnel\"\r\n",
		want: map[string]int{
			"ssh":          1,
			"ssh.user":     2,
			"hosts.t":      4,
			"hosts.t.role": 5,
		},
	},
	{
		name: "values of every other type",
		src: `[x]
a = 1979-05-27 07:32:00Z
b = 1979-05-27T00:32:00.999999-07:00
c = 07:32:00
d = -inf
e = 0xdead_beef
f = [ [1, 2], ["a", [true]], [] ]
g = { h = { i = { j = 1 } } }
k = 1`,
		want: map[string]int{
			"x.a":       2,
			"x.b":       3,
			"x.c":       4,
			"x.d":       5,
			"x.e":       6,
			"x.f":       7,
			"x.f[1][1]": 7,
			"x.g.h.i.j": 8,
			"x.k":       9,
		},
	},
}

func TestKeyLines(t *testing.T) {
	for _, tc := range lineDocs {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if _, err := toml.Decode(tc.src, &v); err != nil {
				t.Fatalf("the fixture is not TOML the parser accepts: %v", err)
			}
			lines := keyLines(tc.src)
			got := map[string]int{}
			for k := range tc.want {
				got[k] = lines[k]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("keyLines (-want +got):\n%s", diff)
			}
		})
	}
}

// On a document it does not understand, the scanner stops and keeps what
// it found so far.
func TestKeyLinesStopsOnGarbage(t *testing.T) {
	src := "[ssh]\nuser = \"root\"\n[oops\nport = 22\n"
	want := map[string]int{"ssh": 1, "ssh.user": 2}
	if diff := cmp.Diff(want, keyLines(src)); diff != "" {
		t.Errorf("keyLines (-want +got):\n%s", diff)
	}
}

// The scanner is run without keyLines' recover, on every prefix of the
// tricky documents and on variants with one byte removed or one
// troublesome byte inserted, so that a panic fails the test instead of
// silently costing line numbers.
func TestScannerNeverPanics(t *testing.T) {
	const inserts = "\"'[]{}=.,#\n\\"
	scan := func(src string) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("scanner panicked: %v\ninput: %q", r, src)
			}
		}()
		s := newScanner(src)
		s.document()
		n := strings.Count(src, "\n") + 1
		for k, l := range s.lines {
			if l < 1 || l > n {
				t.Fatalf("key %q on line %d of a %d-line input %q", k, l, n, src)
			}
		}
	}
	for _, tc := range lineDocs {
		src := tc.src
		for i := 0; i <= len(src); i++ {
			scan(src[:i])
			if i < len(src) {
				scan(src[:i] + src[i+1:])
			}
			for j := 0; j < len(inserts); j++ {
				scan(src[:i] + inserts[j:j+1] + src[i:])
			}
		}
	}
}
