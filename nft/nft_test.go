package nft

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/xtables"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// A case of testdata/: NAME.v4 and NAME.v6, the IPv4 and IPv6 documents
// of a policy, NAME.ipsets its sets, and NAME.golden what it translates
// to: the document, then the table as nft lists it.
type tcase struct {
	name   string
	v4, v6 *policy.Ruleset
	sets   []*policy.Set
}

func cases(t *testing.T) []tcase {
	t.Helper()
	files, err := filepath.Glob("testdata/*.v4")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata: %v", err)
	}
	var out []tcase
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".v4")
		c := tcase{name: name}
		read := func(ext string) string {
			b, err := os.ReadFile(filepath.Join("testdata", name+ext))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if c.v4, err = policy.Parse(read(".v4")); err != nil {
			t.Fatalf("%s.v4: %v", name, err)
		}
		if c.v6, err = policy.Parse(read(".v6")); err != nil {
			t.Fatalf("%s.v6: %v", name, err)
		}
		if c.sets, err = policy.ParseSets(read(".ipsets")); err != nil {
			t.Fatalf("%s.ipsets: %v", name, err)
		}
		out = append(out, c)
	}
	return out
}

func (c tcase) translate(t *testing.T) *Ruleset {
	t.Helper()
	rs, errs := Translate(c.v4, c.v6, c.sets)
	if errs != nil {
		t.Fatalf("%s: %v", c.name, errs)
	}
	return rs
}

// The translations of the policies of testdata are the golden ones.
func TestTranslateGolden(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			rs := c.translate(t)
			got := string(rs.Document("policy "+c.name).Text) + "\n### listed\n" + rs.Canonical()
			path := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("translation (-want +got):\n%s", diff)
			}
		})
	}
}

// Each rule of the document names the lines it translates, and those
// lines are the rules of the policy's documents, each translated once.
func TestDocumentOrigins(t *testing.T) {
	for _, c := range cases(t) {
		rs := c.translate(t)
		doc := rs.Document("x")
		lines := strings.Split(string(doc.Text), "\n")
		seen := map[Origin]int{}
		for n, from := range doc.Lines {
			if n < 1 || n > len(lines) || !strings.HasPrefix(lines[n-1], "\t\t") {
				t.Errorf("%s: line %d (%q) has origins %v but is no rule", c.name, n, lines[n-1], from)
			}
			for _, o := range from {
				seen[o]++
			}
		}
		for family, doc := range map[int]*policy.Ruleset{4: c.v4, 6: c.v6} {
			for _, ch := range doc.Chains {
				for _, r := range ch.Rules {
					if n := seen[Origin{family, r.Line}]; n != 1 {
						t.Errorf("%s: IPv%d line %d (%s) is translated %d times", c.name, family, r.Line, r.Text, n)
					}
				}
			}
		}
	}
}

// A packet of one family meets the rules of its own document, in their
// order: the merged chain, with the rules of the other family left out,
// is the family's chain.
func TestMergeKeepsEachFamily(t *testing.T) {
	rules := func(texts ...string) []xrule {
		var out []xrule
		for i, s := range texts {
			out = append(out, xrule{line: i + 1, matches: []string{s}, verdict: "accept"})
		}
		return out
	}
	for _, tc := range []struct {
		r4, r6 []xrule
		shared int
	}{
		{rules("a", "b", "c"), rules("a", "b", "c"), 3},
		{rules("a", "x", "c"), rules("a", "y", "c"), 2},
		{rules("a", "b", "c"), rules("c", "b", "a"), 1},
		{rules(), rules("a", "b"), 0},
		{rules("a", "a", "b"), rules("a", "b", "b"), 2},
		{rules("p", "q"), rules(), 0},
	} {
		out := merge(tc.r4, tc.r6)
		shared := 0
		var got [2][]int
		for _, r := range out {
			if len(r.From) == 2 {
				shared++
			}
			for _, o := range r.From {
				got[o.Family/6] = append(got[o.Family/6], o.Line)
			}
			if len(r.From) == 1 && !strings.HasPrefix(r.Load, fmt.Sprintf("meta nfproto ipv%d ", r.From[0].Family)) {
				t.Errorf("rule %q of IPv%d only does not match its family only", r.Load, r.From[0].Family)
			}
		}
		for i, want := range []int{len(tc.r4), len(tc.r6)} {
			if len(got[i]) != want || !slices.IsSorted(got[i]) {
				t.Errorf("merge: family %d meets lines %v, want 1..%d in order", 4+2*i, got[i], want)
			}
		}
		if shared != tc.shared {
			t.Errorf("merge shares %d rules, want %d", shared, tc.shared)
		}
	}
}

// Rules the translator cannot translate faithfully are refused, each at
// its line, saying what it is.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		family int
		rule   string
		want   string
	}{
		{4, "-A INPUT -m recent --rcheck -j DROP", "match -m recent is not one it translates"},
		{4, "-A INPUT -p gre -j ACCEPT", "-p gre: it translates the protocols"},
		{4, "-A INPUT -s 2001:db8::1 -j ACCEPT", "-s 2001:db8::1: not an IPv4 address"},
		{6, "-A INPUT -d 198.18.0.1/32 -j ACCEPT", "-d 198.18.0.1/32: not an IPv6 address"},
		{4, "-A INPUT -p tcp -m multiport --ports 22,80 -j ACCEPT", "--ports (a source or a destination port)"},
		{4, "-A INPUT -m conntrack --ctstate DNAT -j ACCEPT", `state "DNAT"`},
		{4, "-A INPUT -p udp -m icmp --icmp-type 8 -j ACCEPT", "--icmp-type needs -p icmp before it"},
		{4, "-A INPUT -j REJECT --reject-with icmp6-no-route", "not a reply of IPv4"},
		{4, `-A INPUT -j LOG --log-prefix "a\"b"`, "nft takes prefixes without quotes"},
		{4, "-A INPUT -j LOG --log-uid", "-j LOG --log-uid needs a value"},
		{4, "-A INPUT -j LOG --log-tcp-options 1", "translates --log-prefix and --log-level"},
		{4, "-A INPUT -i eth*1 -j ACCEPT", "-i eth*1: an interface name"},
		{4, "-A INPUT -p tcp --syn -j ACCEPT", "--syn is not one it translates"},
		{4, "-A INPUT -p icmp -m icmp ! --icmp-type 3/1 -j DROP", "a negated type without a code only"},
		{4, "-A INPUT ! -m comment --comment x -j DROP", "! before -m"},
		{4, "-A INPUT -m limit --limit 1/fortnight -j LOG", "--limit 1/fortnight"},
		{4, "-A input -j ACCEPT", "chain input: its base chains are named input"},
	} {
		decl := ":sub - [0:0]\n"
		if strings.HasPrefix(tc.rule, "-A input") {
			decl = ":input - [0:0]\n"
		}
		doc := "*filter\n:INPUT ACCEPT [0:0]\n" + decl + tc.rule + "\nCOMMIT\n"
		rs, err := policy.Parse(doc)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		empty, _ := policy.Parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
		v4, v6 := rs, empty
		if tc.family == 6 {
			v4, v6 = empty, rs
		}
		_, errs := Translate(v4, v6, nil)
		if len(errs) != 1 {
			t.Errorf("%s: refused %v, want once", tc.rule, errs)
			continue
		}
		if e := errs[0]; e.Family != tc.family || e.Line != 4 && !strings.Contains(tc.rule, "-A input") || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("%s: refused with %v, want IPv%d line 4: ...%s...", tc.rule, e, tc.family, tc.want)
		}
	}
}

// What nft lists of a loaded table, and the canonical form of the
// policy, read the same whatever changes between listings.
func TestCanonical(t *testing.T) {
	listing := `table inet fwpush { # handle 7
	chain output { # handle 3
		type filter hook output priority filter; policy accept;
	}

	chain input { # handle 1
		type filter hook input priority filter; policy drop;
		iifname "lo"  counter packets 12 bytes 3400 accept # handle 5
		ip saddr @fwp-app-4 tcp dport { 80, 443 } accept comment "a  b" # handle 6
	}

	set fwp-app-4 { # handle 2
		type ipv4_addr
		elements = { 198.18.0.22, 198.18.0.3,
			     198.18.0.21 }
	}
}
`
	want := `table inet fwpush {
	set fwp-app-4 {
		type ipv4_addr
		elements = {
			198.18.0.3,
			198.18.0.21,
			198.18.0.22,
		}
	}
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" counter accept
		ip saddr @fwp-app-4 tcp dport { 80, 443 } accept comment "a  b"
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
`
	got, err := Canonical(listing)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Canonical (-want +got):\n%s", diff)
	}
	again, err := Canonical(got)
	if err != nil || again != got {
		t.Errorf("the canonical form is not its own: %v\n%s", err, again)
	}
	for _, c := range cases(t) {
		rs := c.translate(t)
		if got, err := Canonical(rs.Canonical()); err != nil || got != rs.Canonical() {
			t.Errorf("%s: the canonical form of the policy is not its own: %v\n%s", c.name, err, got)
		}
		// The document, read as a listing, is the table it loads.
		doc := strings.TrimPrefix(string(rs.Document("").Text), Preamble)
		if _, err := Canonical(doc); err != nil {
			t.Errorf("%s: document: %v", c.name, err)
		}
	}
	if got, err := Canonical(""); got != "" || err != nil {
		t.Errorf("Canonical of no table = %q, %v", got, err)
	}
	for _, bad := range []string{"chain input {\n}\n", "table inet fwpush {\n\tchain input {\n", "table inet fwpush {\n}\ntable ip x {\n}\n"} {
		if _, err := Canonical(bad); err == nil {
			t.Errorf("Canonical(%q) takes it", bad)
		}
	}
}

// Count counts rules, chain policies and set elements, added and removed.
func TestCount(t *testing.T) {
	live := `table inet fwpush {
	set s {
		type ipv4_addr
		elements = { 198.18.0.1, 198.18.0.2 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "lo" accept
		tcp dport 22 accept
	}
}
`
	want := `table inet fwpush {
	set s {
		type ipv4_addr
		elements = { 198.18.0.2, 198.18.0.3, 198.18.0.4 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
	}
}
`
	if a, r := Count(live, want); a != 3 || r != 3 {
		t.Errorf("Count = +%d -%d, want +3 -3 (a policy, two elements; a policy, a rule, an element)", a, r)
	}
	if a, r := Count("", want); a != 5 || r != 0 {
		t.Errorf("Count from nothing = +%d -%d, want +5 -0", a, r)
	}
	if a, r := Count(want, want); a != 0 || r != 0 {
		t.Errorf("Count of the same = +%d -%d", a, r)
	}
}

// Every table the translator writes loads into a real kernel as it is
// written, and nft lists it as the canonical form says: the testdata's
// policies, and a table of every kind of rule it writes, of each family
// and of both. A run would otherwise find drift on every host, every
// time.
func TestListedAsCanonical(t *testing.T) {
	tester := &xtables.Tester{}
	if _, err := exec("nft"); err != nil {
		t.Skipf("%v (scripts/deps.sh installs nftables)", err)
	}
	var tables []*Ruleset
	var names []string
	for _, c := range cases(t) {
		tables = append(tables, c.translate(t))
		names = append(names, c.name)
	}
	tables = append(tables, everyRule(t)...)
	for i := len(names); i < len(tables); i++ {
		names = append(names, fmt.Sprintf("every rule %d", i-len(names)+1))
	}
	docs := make([][]byte, len(tables))
	for i, rs := range tables {
		docs[i] = rs.Document(names[i]).Text
	}
	res, err := tester.TestNFT(context.Background(), Table, docs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		var rej *xtables.Rejected
		if errors.As(r.Err, &rej) {
			lines := strings.Split(string(docs[i]), "\n")
			line := ""
			if rej.Line > 0 && rej.Line <= len(lines) {
				line = lines[rej.Line-1]
			}
			t.Errorf("%s: nft refuses line %d (%s): %s", names[i], rej.Line, line, rej.Msg)
			continue
		}
		got, err := Canonical(r.Listing)
		if err != nil {
			t.Errorf("%s: %v\n%s", names[i], err, r.Listing)
			continue
		}
		if diff := cmp.Diff(tables[i].Canonical(), got); diff != "" {
			t.Errorf("%s: nft lists (-canonical +listed):\n%s", names[i], diff)
		}
	}
}

// exec finds a program as the tester would.
func exec(name string) (string, error) {
	for _, dir := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/sbin") {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// everyRule makes tables of every kind of rule the translator writes: each
// rule of the IPv4 document only, of the IPv6 one only, and of both; every
// ICMP and ICMPv6 type and code.
func everyRule(t *testing.T) []*Ruleset {
	t.Helper()
	common := []string{
		"-i lo -j ACCEPT", "-i eth+ -j DROP", "! -i eth1 -j ACCEPT", "-o eth0 -j ACCEPT",
		"-p tcp -j ACCEPT", "! -p tcp -j ACCEPT", "-p udp -j ACCEPT", "-p sctp -j ACCEPT",
		"-p icmp -j ACCEPT", "-p ipv6-icmp -j ACCEPT",
		"-p tcp -m tcp --dport 22 -j ACCEPT", "-p tcp -m tcp ! --dport 22 -j ACCEPT",
		"-p udp -m udp --sport 53 --dport 1000:2000 -j ACCEPT", "-p tcp -m multiport --dports 443,80,8000:8080 -j ACCEPT",
		"-p tcp -m multiport ! --sports 1,2 -j ACCEPT", "-p sctp -m sctp --dport 9 -j ACCEPT",
		"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-m conntrack --ctstate NEW,INVALID,UNTRACKED -j ACCEPT",
		"-m conntrack ! --ctstate NEW -j ACCEPT", "-m state ! --state ESTABLISHED,RELATED -j DROP",
		"-m comment --comment \"a comment\" -j ACCEPT", "-j REJECT", "-p tcp -j REJECT --reject-with tcp-reset",
		"-p tcp -m tcp --dport 1 -j REJECT --reject-with tcp-reset", "-p udp -j REJECT",
		"-m limit --limit 1/sec -j LOG --log-prefix \"fwpush DROP: \"", "-m limit --limit 3/min --limit-burst 10 -j LOG --log-level 6",
		"-m limit -j LOG --log-level 7 --log-prefix \"x\"", "-m limit --limit 2/day -j ACCEPT", "-m limit --limit 1/hour --limit-burst 5 -j LOG --log-level warning",
		"-j LOG", "-j RETURN", "-j sub", "-g sub", "-i eth1", "-j DROP",
	}
	only4 := []string{
		"-s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT", "! -s 198.18.0.0/15 -j DROP", "-d 203.0.113.0/24 -j ACCEPT",
		"-s 0.0.0.0/0 -j ACCEPT", "! -d 0.0.0.0/0 -j DROP",
		"-m set --match-set fwp-a-4 src -j ACCEPT", "-m set ! --match-set fwp-a-4 dst -j DROP", "-m set --match-set fwp-n-4 src -j ACCEPT",
		"-j REJECT --reject-with icmp-port-unreachable", "-j REJECT --reject-with icmp-net-unreachable", "-j REJECT --reject-with icmp-host-unreachable",
		"-j REJECT --reject-with icmp-proto-unreachable", "-j REJECT --reject-with icmp-net-prohibited", "-j REJECT --reject-with icmp-host-prohibited",
		"-j REJECT --reject-with icmp-admin-prohibited", "-s 198.51.100.1/32 -j REJECT", "-p icmp -m icmp ! --icmp-type 8 -j ACCEPT",
	}
	only6 := []string{
		"-s 2001:db8::/32 -j ACCEPT", "! -d 2001:db8::1/128 -j DROP", "-m set --match-set fwp-a-6 src -j ACCEPT",
		"-j REJECT --reject-with icmp6-no-route", "-j REJECT --reject-with icmp6-adm-prohibited", "-j REJECT --reject-with icmp6-addr-unreachable",
		"-j REJECT --reject-with icmp6-port-unreachable", "-s 2001:db8::1 -j REJECT", "-p ipv6-icmp -m icmp6 ! --icmpv6-type 128 -j ACCEPT",
	}
	for typ := 0; typ < 256; typ++ {
		only4 = append(only4, fmt.Sprintf("-p icmp -m icmp --icmp-type %d -j ACCEPT", typ))
		only6 = append(only6, fmt.Sprintf("-p ipv6-icmp -m icmp6 --icmpv6-type %d -j ACCEPT", typ))
	}
	for code := 0; code < 16; code++ {
		only4 = append(only4, fmt.Sprintf("-p icmp -m icmp --icmp-type 3/%d -j ACCEPT", code))
		only6 = append(only6, fmt.Sprintf("-p ipv6-icmp -m icmp6 --icmpv6-type 1/%d -j ACCEPT", code))
	}
	sets, err := policy.ParseSets("create fwp-a-4 hash:ip family inet\nadd fwp-a-4 198.18.0.1\ncreate fwp-n-4 hash:net family inet\nadd fwp-n-4 198.51.100.0/25\nadd fwp-n-4 198.51.100.128/25\n" +
		"create fwp-a-6 hash:ip family inet6\nadd fwp-a-6 2001:db8::1\n")
	if err != nil {
		t.Fatal(err)
	}
	doc := func(rules []string) *policy.Ruleset {
		var b strings.Builder
		b.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:sub - [0:0]\n")
		for _, r := range rules {
			b.WriteString("-A INPUT " + r + "\n")
		}
		b.WriteString("-A sub -j RETURN\nCOMMIT\n")
		rs, err := policy.Parse(b.String())
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	none := doc(nil)
	var out []*Ruleset
	for _, pair := range [][2]*policy.Ruleset{
		{doc(append(slices.Clone(common), only4...)), none}, // IPv4 only
		{none, doc(append(slices.Clone(common), only6...))}, // IPv6 only
		{doc(common), doc(common)},                          // both
	} {
		rs, errs := Translate(pair[0], pair[1], sets)
		if errs != nil {
			t.Fatal(errs)
		}
		out = append(out, rs)
	}
	return out
}
