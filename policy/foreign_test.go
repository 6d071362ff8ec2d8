package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestForeign(t *testing.T) {
	desired := "*filter\n:INPUT DROP\n:FORWARD DROP\n:OUTPUT ACCEPT\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
	// Live, as fail2ban and Docker leave it after fwpush applied, plus a
	// rule added by hand (drift, which must stay visible).
	live := "*filter\n:INPUT DROP\n:FORWARD DROP\n:OUTPUT ACCEPT\n:DOCKER-USER -\n:f2b-sshd -\n" +
		"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n" +
		"-A INPUT -i lo -j ACCEPT\n" +
		"-A INPUT -s 198.51.100.7/32 -j ACCEPT\n" +
		"-A FORWARD -j DOCKER-USER\n" +
		"-A DOCKER-USER -j RETURN\n" +
		"-A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable\n" +
		"-A f2b-sshd -j RETURN\nCOMMIT\n"
	own, f := SplitForeign(live, desired)
	wantOwn := "*filter\n:INPUT DROP\n:FORWARD DROP\n:OUTPUT ACCEPT\n-A INPUT -i lo -j ACCEPT\n-A INPUT -s 198.51.100.7/32 -j ACCEPT\nCOMMIT\n"
	if diff := cmp.Diff(wantOwn, own); diff != "" {
		t.Errorf("own part (-want +got):\n%s", diff)
	}
	wantForeign := Foreign{
		Chains: []string{"DOCKER-USER", "f2b-sshd"},
		Jumps:  []string{"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd", "-A FORWARD -j DOCKER-USER"},
	}
	if diff := cmp.Diff(wantForeign, f); diff != "" {
		t.Errorf("foreign part (-want +got):\n%s", diff)
	}
	wantMerged := "*filter\n:INPUT DROP\n:FORWARD DROP\n:OUTPUT ACCEPT\n-F INPUT\n-F FORWARD\n-F OUTPUT\n" +
		"-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n-A FORWARD -j DOCKER-USER\n" +
		"-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
	if diff := cmp.Diff(wantMerged, f.Merge(desired)); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}

	// Nothing foreign: the live ruleset is compared whole.
	if own, f := SplitForeign(desired, desired); own != desired || len(f.Chains) != 0 {
		t.Errorf("SplitForeign of a clean ruleset = %q, %+v", own, f)
	}
}
