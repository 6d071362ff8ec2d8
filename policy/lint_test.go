package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A rule of a preserved chain that accepts without any match opens the
// host, when a built-in chain reaches the chain; a match, another verdict,
// an unreached chain or a chain of the policy's own is not an opening.
func TestOpenings(t *testing.T) {
	const head = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
	for _, tc := range []struct {
		name      string
		table     string
		preserved []string
		want      []Opening
	}{
		{"an accept without a match, jumped to from the top of INPUT",
			head + ":f2b-evil - [0:0]\n-A INPUT -j f2b-evil\n-A f2b-evil -j ACCEPT\nCOMMIT\n", []string{"f2b-evil"},
			[]Opening{{Chain: "f2b-evil", Rule: "-A f2b-evil -j ACCEPT", From: []string{"INPUT"}}}},
		{"reached through another preserved chain, with a goto, from two chains",
			head + ":DOCKER-USER - [0:0]\n:DOCKER - [0:0]\n-A INPUT -p tcp -j DOCKER-USER\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -g DOCKER\n-A DOCKER -j ACCEPT\nCOMMIT\n",
			[]string{"DOCKER-USER", "DOCKER"},
			[]Opening{{Chain: "DOCKER", Rule: "-A DOCKER -j ACCEPT", From: []string{"INPUT", "FORWARD"}}}},
		{"fail2ban as it is: bans and a return",
			head + ":f2b-sshd - [0:0]\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable\n-A f2b-sshd -j RETURN\nCOMMIT\n",
			[]string{"f2b-sshd"}, nil},
		{"an accept with a match",
			head + ":DOCKER - [0:0]\n-A FORWARD -o docker0 -j DOCKER\n-A DOCKER -d 198.18.17.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
			[]string{"DOCKER"}, nil},
		{"a chain no built-in chain reaches",
			head + ":f2b-idle - [0:0]\n-A f2b-idle -j ACCEPT\nCOMMIT\n", []string{"f2b-idle"}, nil},
		{"the policy's own chain: compared, not trusted",
			head + ":web - [0:0]\n-A INPUT -j web\n-A web -j ACCEPT\nCOMMIT\n", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Openings(tc.table, tc.preserved)); diff != "" {
				t.Errorf("openings (-want +got):\n%s", diff)
			}
		})
	}
}
