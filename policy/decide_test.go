package policy

import (
	"net/netip"
	"testing"
)

// TestDecide: what decides a packet's fate: the rule it meets (through
// the jumps that led there), or the chain's policy; for an unknown
// verdict, the rule that may or may not match.
func TestDecide(t *testing.T) {
	rs, err := Parse(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
:app - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
-A INPUT -s 198.18.0.0/24 -j app
-A INPUT -p tcp -m recent --name x --rcheck -m tcp --dport 8443 -j DROP
-A INPUT -m limit --limit 1/sec -j LOG --log-prefix "fwpush DROP: "
-A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
-A app -p tcp -m tcp --dport 3306 -j ACCEPT
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		p     Packet
		want  Verdict
		chain string
		line  int // the deciding rule's; 0 for the policy
		jumps []int
	}{
		{"loopback", Packet{In: "lo", Proto: "tcp", DPort: 80}, Accept, "INPUT", 7, nil},
		{"banned", Packet{In: "eth0", Src: src("198.51.100.66"), Proto: "tcp", DPort: 22}, Drop, "f2b-sshd", 12, []int{8}},
		{"through a user chain", Packet{In: "eth1", Src: src("198.18.0.21"), Proto: "tcp", DPort: 3306}, Accept, "app", 14, []int{9}},
		{"back from a user chain to the policy", Packet{In: "eth0", Src: src("198.51.100.7"), Proto: "tcp", DPort: 22}, Drop, "INPUT", 0, nil},
		{"a drop that may match", Packet{In: "eth0", Src: src("198.51.100.7"), Proto: "tcp", DPort: 8443}, Unknown, "INPUT", 10, nil},
		{"a chain that is not", Packet{}, Unknown, "NOPE", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain := "INPUT"
			if tc.chain == "NOPE" {
				chain = "NOPE"
			}
			d := rs.Decide(chain, tc.p)
			line := 0
			if d.Rule != nil {
				line = d.Rule.Line
			}
			var jumps []int
			for _, j := range d.Jumps {
				jumps = append(jumps, j.Line)
			}
			if d.Verdict != tc.want || d.Chain != tc.chain || line != tc.line || len(jumps) != len(tc.jumps) || (len(jumps) > 0 && jumps[0] != tc.jumps[0]) {
				t.Errorf("Decide = %v in %s at line %d via %v; want %v in %s at line %d via %v", d.Verdict, d.Chain, line, jumps, tc.want, tc.chain, tc.line, tc.jumps)
			}
			if v := rs.Evaluate(chain, tc.p); v != d.Verdict {
				t.Errorf("Evaluate = %v, Decide's verdict %v", v, d.Verdict)
			}
		})
	}
}

// TestDecideSourceNet: a packet from any address of a network is
// accepted for certain only by rules that accept every address of it.
func TestDecideSourceNet(t *testing.T) {
	rs, err := Parse(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 198.51.100.0/24 -i eth1 -p tcp -m tcp --dport 9100 -j ACCEPT
-A INPUT -i eth1 -p tcp -m set --match-set fwp-mon-4 src -m tcp --dport 9200 -j ACCEPT
-A INPUT -s 198.51.100.128/25 -p tcp -m tcp --dport 9300 -j DROP
-A INPUT -p tcp -m tcp --dport 9300 -j ACCEPT
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	rs.WithSets([]*Set{NewSet("fwp-mon-4", Inet, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})})
	for _, tc := range []struct {
		net  string
		port int
		want Verdict
		line int
	}{
		{"198.51.100.0/24", 9100, Accept, 5},
		{"198.51.100.64/26", 9100, Accept, 5},
		{"198.51.100.0/23", 9100, Drop, 0}, // half of it only: the accept cannot be counted on
		{"203.0.113.0/24", 9100, Drop, 0},
		{"198.51.100.0/25", 9200, Accept, 6},
		{"198.51.100.0/23", 9200, Drop, 0},
		{"198.51.100.0/25", 9300, Accept, 8},
		{"198.51.100.0/24", 9300, Unknown, 7}, // half of it is dropped
		{"198.51.100.192/26", 9300, Drop, 7},
	} {
		d := rs.Decide("INPUT", Packet{In: "eth1", SrcNet: netip.MustParsePrefix(tc.net), Proto: "tcp", DPort: tc.port})
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		if d.Verdict != tc.want || line != tc.line {
			t.Errorf("from %s to %d: %v at line %d, want %v at line %d", tc.net, tc.port, d.Verdict, line, tc.want, tc.line)
		}
	}
}
