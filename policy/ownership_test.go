package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// table makes a canonical filter table of lines.
func table(lines ...string) string {
	return "*filter\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
}

// The policy every case starts from, canonical.
var (
	builtins = []string{":INPUT DROP", ":FORWARD DROP", ":OUTPUT ACCEPT"}
	input    = []string{
		"-A INPUT -i lo -j ACCEPT",
		"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
	}
	desired = table(cat(builtins, input)...)
	flushes = []string{"-F INPUT", "-F FORWARD", "-F OUTPUT"}
)

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// What other software leaves in a filter table.
var (
	dockerChains = []string{":DOCKER -", ":DOCKER-ISOLATION-STAGE-1 -", ":DOCKER-ISOLATION-STAGE-2 -", ":DOCKER-USER -"}
	dockerJumps  = []string{
		"-A FORWARD -j DOCKER-USER",
		"-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
		"-A FORWARD -o docker0 -j DOCKER",
	}
	dockerRules = []string{
		"-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
		"-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
		"-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
		"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
		"-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
		"-A DOCKER-USER -j RETURN",
	}
	// Docker before version 28 accepts its bridge's traffic in FORWARD
	// itself, between its jumps.
	dockerForward = []string{
		"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
	}
	f2bJump  = "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"
	f2bRules = []string{
		"-A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable",
		"-A f2b-sshd -j RETURN",
	}
	kubeChains = []string{":KUBE-EXTERNAL-SERVICES -", ":KUBE-FIREWALL -", ":KUBE-FORWARD -", ":KUBE-KUBELET-CANARY -",
		":KUBE-NODEPORTS -", ":KUBE-PROXY-CANARY -", ":KUBE-PROXY-FIREWALL -", ":KUBE-SERVICES -"}
	kubeInput = []string{
		`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
		`-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`,
		`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
		"-A INPUT -j KUBE-FIREWALL",
	}
	kubeForward = []string{
		`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
		`-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
		`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	}
	kubeOutput = []string{
		`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		"-A OUTPUT -j KUBE-FIREWALL",
	}
	kubeRules = []string{
		`-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
		`-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP`,
		`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT`,
	}
	backdoor = []string{":backdoor -"}
)

func TestSplitAndMerge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		live     string
		preserve []string
		want     Split // Own, Preserved, Unknown, Held, Jumps
		merged   string
	}{
		{
			name:   "nothing but the policy",
			live:   desired,
			want:   Split{Own: desired},
			merged: table(cat(builtins, flushes, input)...),
		},
		{
			name:   "a fresh server: an open table and a rule added by hand",
			live:   table(":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
			want:   Split{Own: table(":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")},
			merged: table(cat(builtins, flushes, input)...),
		},
		{
			// As a restart of Docker leaves it after fwpush applied.
			name:     "Docker, preserved",
			live:     table(cat(builtins, dockerChains, input, dockerJumps, dockerRules)...),
			preserve: []string{"DOCKER*"},
			want: Split{Own: desired, Preserved: []string{"DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"},
				Jumps: dockerJumps},
			merged: table(cat(builtins, flushes, input, dockerJumps)...),
		},
		{
			// Its rules in FORWARD itself are FORWARD's, which the policy
			// owns: drift. The jumps stay, in their order.
			name:     "Docker before 28, preserved",
			live:     table(cat(builtins, dockerChains, input, dockerJumps[:2], dockerForward[:1], dockerJumps[2:], dockerForward[1:], dockerRules)...),
			preserve: []string{"DOCKER*"},
			want: Split{Own: table(cat(builtins, input, dockerForward)...),
				Preserved: []string{"DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"},
				Jumps:     dockerJumps},
			merged: table(cat(builtins, flushes, input, dockerJumps)...),
		},
		{
			name: "Docker, not preserved: every chain unknown, and drift",
			live: table(cat(builtins, dockerChains, input, dockerJumps, dockerRules)...),
			want: Split{Own: table(cat(builtins, dockerChains, input, dockerJumps, dockerRules)...),
				Unknown: []string{"DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"}},
			merged: table(cat(builtins, flushes,
				[]string{"-F DOCKER", "-F DOCKER-ISOLATION-STAGE-1", "-F DOCKER-ISOLATION-STAGE-2", "-F DOCKER-USER",
					"-X DOCKER", "-X DOCKER-ISOLATION-STAGE-1", "-X DOCKER-ISOLATION-STAGE-2", "-X DOCKER-USER"}, input)...),
		},
		{
			// fail2ban inserts its jump at the top of INPUT.
			name:     "fail2ban with a ban, preserved",
			live:     table(cat(builtins, []string{":f2b-sshd -", f2bJump}, input, f2bRules)...),
			preserve: []string{"f2b-*"},
			want:     Split{Own: desired, Preserved: []string{"f2b-sshd"}, Jumps: []string{f2bJump}},
			merged:   table(cat(builtins, flushes, []string{f2bJump}, input)...),
		},
		{
			// A jump between the policy's rules stays after the same rule.
			name:     "a jump in the middle of INPUT stays there",
			live:     table(cat(builtins, []string{":f2b-sshd -"}, input[:1], []string{f2bJump}, input[1:], f2bRules)...),
			preserve: []string{"f2b-*"},
			want:     Split{Own: desired, Preserved: []string{"f2b-sshd"}, Jumps: []string{f2bJump}},
			merged:   table(cat(builtins, flushes, input[:1], []string{f2bJump}, input[1:])...),
		},
		{
			// The rule it followed is gone from the policy: the nearest
			// rule before it that is still there anchors it.
			name:     "a jump after a rule the policy dropped",
			live:     table(cat(builtins, []string{":f2b-sshd -"}, input[:2], []string{"-A INPUT -s 198.51.100.7/32 -j ACCEPT", f2bJump}, input[2:], f2bRules)...),
			preserve: []string{"f2b-*"},
			want: Split{Own: table(cat(builtins, input[:2], []string{"-A INPUT -s 198.51.100.7/32 -j ACCEPT"}, input[2:])...),
				Preserved: []string{"f2b-sshd"}, Jumps: []string{f2bJump}},
			merged: table(cat(builtins, flushes, input[:2], []string{f2bJump}, input[2:])...),
		},
		{
			name: "a backdoor: unknown, with the jump into it",
			live: table(cat(builtins, backdoor, []string{"-A INPUT -j backdoor"}, input, []string{"-A backdoor -j ACCEPT"})...),
			want: Split{Own: table(cat(builtins, backdoor, []string{"-A INPUT -j backdoor"}, input, []string{"-A backdoor -j ACCEPT"})...),
				Unknown: []string{"backdoor"}},
			merged: table(cat(builtins, flushes, []string{"-F backdoor", "-X backdoor"}, input)...),
		},
		{
			// Preserving fail2ban keeps nothing else: the backdoor is drift.
			name:     "a backdoor beside fail2ban",
			live:     table(cat(builtins, []string{":f2b-sshd -"}, backdoor, []string{f2bJump, "-A INPUT -j backdoor"}, input, f2bRules, []string{"-A backdoor -j ACCEPT"})...),
			preserve: []string{"f2b-*", "DOCKER*"},
			want: Split{Own: table(cat(builtins, backdoor, []string{"-A INPUT -j backdoor"}, input, []string{"-A backdoor -j ACCEPT"})...),
				Preserved: []string{"f2b-sshd"}, Unknown: []string{"backdoor"}, Jumps: []string{f2bJump}},
			merged: table(cat(builtins, flushes, []string{"-F backdoor", "-X backdoor", f2bJump}, input)...),
		},
		{
			// A stranger let in by a chain named like Docker's, on a host
			// whose role preserves nothing of Docker.
			name: "a DOCKER-USER chain where Docker is not preserved",
			live: table(cat(builtins, []string{":DOCKER-USER -", "-A INPUT -j DOCKER-USER"}, input, []string{"-A DOCKER-USER -s 198.51.100.9/32 -j ACCEPT"})...),
			want: Split{Own: table(cat(builtins, []string{":DOCKER-USER -", "-A INPUT -j DOCKER-USER"}, input, []string{"-A DOCKER-USER -s 198.51.100.9/32 -j ACCEPT"})...),
				Unknown: []string{"DOCKER-USER"}},
			merged: table(cat(builtins, flushes, []string{"-F DOCKER-USER", "-X DOCKER-USER"}, input)...),
		},
		{
			// Comments quote words such as "-j": only the real target counts.
			name:     "Kubernetes, preserved",
			live:     table(cat(builtins, kubeChains, kubeInput, input, kubeForward, kubeOutput, kubeRules)...),
			preserve: []string{"KUBE-*"},
			want: Split{Own: desired,
				Preserved: []string{"KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-KUBELET-CANARY", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"},
				Jumps:     cat(kubeInput, kubeForward, kubeOutput)},
			merged: table(cat(builtins, flushes, kubeInput, input, kubeForward, kubeOutput)...),
		},
		{
			// Removing it would break the preserved chain that jumps there.
			name:     "an unknown chain a preserved one jumps to",
			live:     table(cat(builtins, []string{":DOCKER-USER -", ":helper -", "-A FORWARD -j DOCKER-USER", "-A INPUT -j helper"}, input, []string{"-A DOCKER-USER -j helper", "-A helper -j RETURN"})...),
			preserve: []string{"DOCKER*"},
			want: Split{Own: table(cat(builtins, []string{":helper -", "-A INPUT -j helper"}, input, []string{"-A helper -j RETURN"})...),
				Preserved: []string{"DOCKER-USER"}, Unknown: []string{"helper"}, Held: []string{"helper"}, Jumps: []string{"-A FORWARD -j DOCKER-USER"}},
			merged: table(cat(builtins, flushes, input, []string{"-A FORWARD -j DOCKER-USER"})...),
		},
		{
			// The policy's own chains are its own, whatever a pattern says.
			name:     "a chain the policy declares",
			live:     table(cat(builtins, []string{":f2b-own -", "-A INPUT -j f2b-own"}, input, []string{"-A f2b-own -j RETURN"})...),
			preserve: []string{"f2b-*"},
			want:     Split{Own: table(cat(builtins, []string{":f2b-own -", "-A INPUT -j f2b-own"}, input, []string{"-A f2b-own -j RETURN"})...)},
			merged:   table(cat(builtins, []string{":f2b-own -", "-F INPUT", "-F FORWARD", "-F OUTPUT", "-F f2b-own", "-A INPUT -j f2b-own"}, input, []string{"-A f2b-own -j RETURN"})...),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := desired
			if tc.name == "a chain the policy declares" {
				want = tc.live
			}
			got := SplitLive(tc.live, want, tc.preserve)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Split{})); diff != "" {
				t.Errorf("SplitLive (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.merged, got.Merge(want)); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	pats := []string{"DOCKER*", "f2b-*", "KUBE-?ARK-*", "[a-c]*"}
	for chain, want := range map[string]bool{
		"DOCKER": true, "DOCKER-USER": true, "f2b-sshd": true, "KUBE-MARK-DROP": true, "backdoor": true,
		"docker": false, "f2b": false, "KUBE-SERVICES": false, "delta": false,
		"INPUT": false, "FORWARD": false, "OUTPUT": false,
	} {
		if got := Matches(pats, chain); got != want {
			t.Errorf("Matches(%q) = %v, want %v", chain, got, want)
		}
	}
	if Matches([]string{"*"}, "INPUT") {
		t.Errorf("a pattern keeps a built-in chain")
	}
}

func TestOpen(t *testing.T) {
	for text, want := range map[string]bool{
		"": true,
		"*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n":                              true,
		"*filter\n:INPUT DROP\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n":                                false,
		"*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n-A INPUT -j ACCEPT\nCOMMIT\n":          false,
		"*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\n:f2b-sshd -\nCOMMIT\n":                 false,
		Canonical("# Generated by iptables-save\n*filter\n:INPUT ACCEPT [3:180]\nCOMMIT\n# Completed\n"): true,
	} {
		if got := Open(text); got != want {
			t.Errorf("Open(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestSuggestPatterns(t *testing.T) {
	got := SuggestPatterns([]string{"DOCKER", "DOCKER-USER", "f2b-sshd", "backdoor", "KUBE-FIREWALL", "f2b-nginx", "backdoor2"})
	want := []string{"DOCKER*", "f2b-*", "backdoor", "KUBE-*", "backdoor2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SuggestPatterns (-want +got):\n%s", diff)
	}
}
