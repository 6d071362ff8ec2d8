package change

import (
	"strings"
	"testing"
)

// A chain named like a preserve pattern (f2b-evil) that accepts every
// packet, jumped to from the top of INPUT: a run warns of it and leaves
// the host as it is (the pattern trusts the chain); --strict-preserve
// takes it for drift, refused, and with --force-own removed.
func TestDecideOpenings(t *testing.T) {
	inv := loadFleet(t)
	pol := policyOf(t, inv, "app-1")
	f := debian(t, pol.Host, "app-1.docker")
	persisted(pol)(&f)
	// As iptables-save prints it once someone added the chain.
	evil := strings.Replace(f.V4, ":f2b-sshd - [0:0]\n", ":f2b-sshd - [0:0]\n:f2b-evil - [0:0]\n", 1)
	evil = strings.Replace(evil, "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n", "-A INPUT -j f2b-evil\n-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd\n", 1)
	evil = strings.Replace(evil, "COMMIT\n", "-A f2b-evil -j ACCEPT\nCOMMIT\n", 1)
	if evil == f.V4 || strings.Count(evil, "f2b-evil") != 3 {
		t.Fatalf("live/app-1.docker.v4 is no longer what this test edits:\n%s", f.V4)
	}
	if c := Decide(inv, pol, f, Options{}); c.Action != None || len(c.Openings) != 0 {
		t.Fatalf("app-1 as the policy has it: %s, openings %q; want none", c.Action, c.Openings)
	}
	f.V4 = evil

	c := Decide(inv, pol, f, Options{})
	if c.Action != None || len(c.Openings) != 1 {
		t.Fatalf("f2b-evil preserved: %s, openings %q; want no change and one opening", c.Action, c.Openings)
	}
	for _, want := range []string{"IPv4", "f2b-evil accepts every packet that INPUT sends it (-A f2b-evil -j ACCEPT)", "--strict-preserve"} {
		if !strings.Contains(c.Openings[0], want) {
			t.Errorf("opening %q\nwant %q in it", c.Openings[0], want)
		}
	}

	c = Decide(inv, pol, f, Options{StrictPreserve: true})
	// Drift: the host records this very policy as applied.
	if c.Action != RepairDrift || c.Refusal == nil || c.Refusal.Stage != StageUnknownChains || !contains(c.Unknown, "f2b-evil") {
		t.Fatalf("--strict-preserve: %s, refusal %+v, unknown %v; want the repair refused for the unknown chain f2b-evil", c.Action, c.Refusal, c.Unknown)
	}
	if want := "f2b-evil: a preserve pattern keeps it, but it accepts every packet without any match, reached from a built-in chain, which --strict-preserve counts as drift; remove it with --force-own, or by hand"; c.Refusal.Reason != want {
		t.Errorf("--strict-preserve's refusal: %q", c.Refusal.Reason)
	}
	if c.Removed == 0 || !strings.Contains(c.Diff, "-A INPUT -j f2b-evil") {
		t.Errorf("--strict-preserve: the diff does not show the jump as drift:\n%s", c.Diff)
	}

	c = Decide(inv, pol, f, Options{StrictPreserve: true, ForceOwn: true})
	if c.Action != RepairDrift || c.Refusal != nil {
		t.Fatalf("--strict-preserve --force-own: %s, refusal %+v; want the apply", c.Action, c.Refusal)
	}
	if !strings.Contains(c.Apply.V4, "-X f2b-evil\n") || strings.Contains(c.Apply.V4, "-j f2b-evil") || !strings.Contains(c.Apply.V4, "-j f2b-sshd") {
		t.Errorf("--strict-preserve --force-own: the apply keeps f2b-evil, or loses f2b-sshd:\n%s", c.Apply.V4)
	}
}
