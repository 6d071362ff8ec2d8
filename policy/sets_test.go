package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}

func TestNewSet(t *testing.T) {
	s := NewSet("fwp-app-4", Inet, prefixes("198.18.0.22", "198.18.0.21/32", "198.18.0.22"))
	if s.Type != HashIP || s.Options != "" {
		t.Errorf("addresses make %s %q, want hash:ip with no options", s.Type, s.Options)
	}
	if diff := cmp.Diff([]string{"198.18.0.21", "198.18.0.22"}, texts(s.Members)); diff != "" {
		t.Errorf("members are not sorted and distinct (-want +got):\n%s", diff)
	}
	n := NewSet("fwp-mon-4", Inet, prefixes("198.51.100.7/24", "203.0.113.1"))
	if n.Type != HashNet {
		t.Errorf("a network makes %s, want hash:net", n.Type)
	}
	if diff := cmp.Diff([]string{"198.51.100.0/24", "203.0.113.1"}, texts(n.Members)); diff != "" {
		t.Errorf("members are not masked (-want +got):\n%s", diff)
	}
	big := make([]netip.Prefix, 70000)
	a := netip.MustParseAddr("198.18.0.0")
	for i := range big {
		big[i] = netip.PrefixFrom(a, 32)
		a = a.Next()
	}
	if b := NewSet("fwp-big-4", Inet, big); b.Options != "maxelem 131072" {
		t.Errorf("70,000 members: options %q, want maxelem 131072", b.Options)
	}
}

func texts(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, member(p))
	}
	return out
}

func TestContains(t *testing.T) {
	ips := NewSet("a", Inet, prefixes("198.18.0.21", "198.18.0.22", "198.18.0.40"))
	nets := NewSet("n", Inet, prefixes("198.51.100.0/24", "203.0.113.7"))
	six := NewSet("s", Inet6, prefixes("2001:db8::21"))
	tests := []struct {
		s    *Set
		addr string
		want bool
	}{
		{ips, "198.18.0.21", true},
		{ips, "198.18.0.40", true},
		{ips, "198.18.0.23", false},
		{ips, "2001:db8::21", false},
		{nets, "198.51.100.99", true},
		{nets, "203.0.113.7", true},
		{nets, "203.0.113.8", false},
		{six, "2001:db8::21", true},
		{six, "198.18.0.21", false},
	}
	for _, tt := range tests {
		if got := tt.s.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%s contains %s: %v, want %v", tt.s.Name, tt.addr, got, tt.want)
		}
	}
	if ips.Contains(netip.Addr{}) {
		t.Error("a set contains the zero address")
	}
}

// live is what `ipset save` printed for the sets of TestRestoreSets, in
// the kernel's own order, with the options it picks.
const live = `create fwp-app-4 hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5d3da80b
add fwp-app-4 198.18.0.22
add fwp-app-4 198.18.0.21
create fwp-x~abc123-pub6 hash:ip family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x9457c057
add fwp-x~abc123-pub6 2001:db8::21
create fwp-n hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x9a1ebba9
add fwp-n 198.51.100.0/24
add fwp-n 203.0.113.1
`

func TestRestoreSets(t *testing.T) {
	sets := []*Set{
		NewSet("fwp-app-4", Inet, prefixes("198.18.0.22", "198.18.0.21")),
		NewSet("fwp-n", Inet, prefixes("203.0.113.1", "198.51.100.0/24")),
		NewSet("fwp-x~abc123-pub6", Inet6, prefixes("2001:db8::21")),
	}
	want := `create fwp-app-4 hash:ip family inet -exist
add fwp-app-4 198.18.0.21
add fwp-app-4 198.18.0.22
create fwp-n hash:net family inet -exist
add fwp-n 198.51.100.0/24
add fwp-n 203.0.113.1
create fwp-x~abc123-pub6 hash:ip family inet6 -exist
add fwp-x~abc123-pub6 2001:db8::21
`
	if diff := cmp.Diff(want, string(RestoreSets(sets))); diff != "" {
		t.Errorf("RestoreSets (-want +got):\n%s", diff)
	}
	wantDecl := "create fwp-app-4 hash:ip family inet -exist\ncreate fwp-n hash:net family inet -exist\ncreate fwp-x~abc123-pub6 hash:ip family inet6 -exist\n"
	if diff := cmp.Diff(wantDecl, string(DeclareSets(sets))); diff != "" {
		t.Errorf("DeclareSets (-want +got):\n%s", diff)
	}
	if RestoreSets(nil) != nil || DeclareSets(nil) != nil {
		t.Error("no sets render something")
	}

	// What ipset save prints of them, and the document itself, read back
	// to the same canonical form as the sets.
	parsed, err := ParseSets(live)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(CanonicalSets(sets), CanonicalSets(parsed)); diff != "" {
		t.Errorf("ipset save's sets differ from the rendered ones (-rendered +live):\n%s", diff)
	}
	again, err := ParseSets(string(RestoreSets(sets)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(CanonicalSets(sets), CanonicalSets(again)); diff != "" {
		t.Errorf("the rendered document reads back different (-rendered +read):\n%s", diff)
	}
	if len(DiffSets(parsed, sets)) != 0 {
		t.Errorf("DiffSets finds a change between equal sets: %+v", DiffSets(parsed, sets))
	}
}

func TestCanonicalSets(t *testing.T) {
	sets, err := ParseSets(`# a comment
create fwp-b hash:ip family inet hashsize 64 maxelem 131072 timeout 300 counters
add fwp-b 198.18.0.9 timeout 120
add fwp-b 198.18.0.2
add fwp-b 198.18.0.2 -exist

create fwp-a hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1
add fwp-a 2001:db8:0:0::/64
add fwp-a 2001:db8::/64
add fwp-a 2001:db8:1::/48 nomatch
add fwp-a 198.51.100.0/24
create other hash:ip,port family inet
add other 198.18.0.1,tcp:80
create l list:set size 8
add l other
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `create fwp-a hash:net family inet6
add fwp-a 2001:db8::/64
add fwp-a 198.51.100.0/24
add fwp-a 2001:db8:1::/48 nomatch
create fwp-b hash:ip family inet maxelem 131072 timeout 300 counters
add fwp-b 198.18.0.2
add fwp-b 198.18.0.9 timeout 120
create l list:set size 8
add l other
create other hash:ip,port family inet
add other 198.18.0.1,tcp:80
`
	if diff := cmp.Diff(want, CanonicalSets(sets)); diff != "" {
		t.Errorf("CanonicalSets (-want +got):\n%s", diff)
	}
	if got := len(Owned(sets)); got != 2 {
		t.Errorf("Owned keeps %d sets, want fwp-a and fwp-b", got)
	}
}

func TestParseSetsErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"add fwp-a 198.18.0.1\n", "line 1: add to set fwp-a, which is not created before"},
		{"create fwp-a hash:ip\ncreate fwp-a hash:ip\n", "line 2: set fwp-a is created twice"},
		{"create fwp-a\n", "line 1: \"create fwp-a\": create needs a name and a type"},
		{"create fwp-a hash:ip family ipx\n", "line 1: set fwp-a: family \"ipx\" is neither inet nor inet6"},
		{"create fwp-a hash:ip maxelem\n", "line 1: set fwp-a: maxelem needs a value"},
		{"create " + strings.Repeat("x", 32) + " hash:ip\n", "at most 31 characters"},
		{"flush fwp-a\n", "line 1: \"flush fwp-a\": only create and add lines are read"},
		{"create fwp-a hash:ip\nadd fwp-a\n", "line 2: \"add fwp-a\": add needs a set and an entry"},
	}
	for _, tt := range tests {
		_, err := ParseSets(tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSets(%q): %v, want %q", tt.text, err, tt.want)
		}
	}
}

func TestDiffSets(t *testing.T) {
	live, err := ParseSets(`create fwp-app-4 hash:ip family inet hashsize 1024 maxelem 65536
add fwp-app-4 198.18.0.21
add fwp-app-4 198.18.0.22
add fwp-app-4 198.18.0.99
add fwp-app-4 198.18.0.23 timeout 60
create fwp-old-4 hash:ip family inet
add fwp-old-4 198.18.0.5
create fwp-db-4 hash:ip family inet timeout 30
add fwp-db-4 198.18.0.31
create fwp-same-4 hash:ip family inet
add fwp-same-4 198.18.0.7
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Set{
		NewSet("fwp-app-4", Inet, prefixes("198.18.0.21", "198.18.0.22", "198.18.0.23", "198.18.0.24")),
		NewSet("fwp-db-4", Inet, prefixes("198.18.0.31")),
		NewSet("fwp-lb-4", Inet, prefixes("198.18.0.11")),
		NewSet("fwp-same-4", Inet, prefixes("198.18.0.7")),
	}
	got := DiffSets(live, want)
	wantChanges := []SetChange{
		{Name: "fwp-app-4", Added: []string{"198.18.0.23", "198.18.0.24"}, Removed: []string{"198.18.0.99", "198.18.0.23 timeout 60"}},
		{Name: "fwp-db-4", Recreate: true},
		{Name: "fwp-lb-4", Create: true, Added: []string{"198.18.0.11"}},
		{Name: "fwp-old-4", Destroy: true, Removed: []string{"198.18.0.5"}},
	}
	if diff := cmp.Diff(wantChanges, got); diff != "" {
		t.Errorf("DiffSets (-want +got):\n%s", diff)
	}
	if d := DiffSets(nil, nil); d != nil {
		t.Errorf("no sets differ: %+v", d)
	}
}

func TestEvaluateSets(t *testing.T) {
	rs, err := Parse(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT
-A INPUT -i eth1 -p tcp -m set ! --match-set fwp-app-4 src -m tcp --dport 9000 -j ACCEPT
-A INPUT -i eth1 -p tcp -m set --match-set nowhere src -m tcp --dport 7000 -j ACCEPT
-A INPUT -i eth1 -p tcp -m set --match-set fwp-odd-4 src -m tcp --dport 7001 -j DROP
-A INPUT -i eth1 -p tcp -m tcp --dport 7001 -j ACCEPT
-A OUTPUT -o eth1 -p tcp -m set --match-set fwp-db-4 dst,src -m tcp --dport 3306 -j ACCEPT
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	odd, err := ParseSets("create fwp-odd-4 hash:ip family inet\nadd fwp-odd-4 198.18.0.50 timeout 9\n")
	if err != nil {
		t.Fatal(err)
	}
	rs.WithSets(append([]*Set{
		NewSet("fwp-app-4", Inet, prefixes("198.18.0.21", "198.18.0.22")),
		NewSet("fwp-db-4", Inet, prefixes("198.18.0.31")),
	}, odd...))
	if diff := cmp.Diff([]string{"fwp-app-4", "fwp-db-4", "fwp-odd-4", "nowhere"}, rs.SetNames()); diff != "" {
		t.Errorf("SetNames (-want +got):\n%s", diff)
	}
	in := func(src string, port int) Packet {
		return Packet{In: "eth1", Src: ip(src), Dst: ip("198.18.0.31"), Proto: "tcp", SPort: 40000, DPort: port, State: "NEW"}
	}
	tests := []struct {
		name  string
		chain string
		p     Packet
		want  Verdict
	}{
		{"a member", "INPUT", in("198.18.0.22", 3306), Accept},
		{"not a member", "INPUT", in("198.18.0.23", 3306), Drop},
		{"a member, negated", "INPUT", in("198.18.0.21", 9000), Drop},
		{"not a member, negated", "INPUT", in("198.18.0.23", 9000), Accept},
		{"an unknown source", "INPUT", Packet{In: "eth1", Proto: "tcp", DPort: 3306, State: "NEW"}, Drop},
		{"a set not given is not counted on", "INPUT", in("198.18.0.22", 7000), Drop},
		{"a set with entries not read may drop", "INPUT", in("198.18.0.23", 7001), Unknown},
		{"the first flag names the address", "OUTPUT", Packet{Out: "eth1", Src: ip("198.18.0.21"), Dst: ip("198.18.0.31"), Proto: "tcp", DPort: 3306}, Accept},
		{"the first flag names the address, not the other", "OUTPUT", Packet{Out: "eth1", Src: ip("198.18.0.31"), Dst: ip("198.18.0.21"), Proto: "tcp", DPort: 3306}, Drop},
	}
	for _, tt := range tests {
		if got := rs.Evaluate(tt.chain, tt.p); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}

	// Without sets, a set match may or may not match: an accept behind
	// it is not counted on.
	bare, _ := Parse(`*filter
:INPUT DROP [0:0]
-A INPUT -p tcp -m set --match-set fwp-app-4 src -j ACCEPT
COMMIT
`)
	if v := bare.Evaluate("INPUT", in("198.18.0.22", 3306)); v != Drop {
		t.Errorf("a set match with no sets given: %s, want drop", v)
	}
}

func TestParseSetMatchErrors(t *testing.T) {
	for _, rule := range []string{
		"-A INPUT -m set --match-set fwp-a -j ACCEPT",
		"-A INPUT -m set --match-set fwp-a src,both -j ACCEPT",
		"-A INPUT -m set --match-set",
	} {
		if _, err := Parse("*filter\n:INPUT DROP [0:0]\n" + rule + "\nCOMMIT\n"); err == nil {
			t.Errorf("Parse takes %q", rule)
		}
	}
}
