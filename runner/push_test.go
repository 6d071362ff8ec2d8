package runner

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// Timings. A run that goes well never waits for the guard, so its delay
// costs nothing and is generous: a loaded machine running -race must not
// see the guard win the race. Runs whose SSH is cut do wait for it.
const (
	testRollbackAfter = 5 * time.Second
	cutRollbackAfter  = 2 * time.Second
	testPoll          = 10 * time.Millisecond
)

// runHosts runs the pipeline on hosts with fast timings and returns the
// results by host name, checking they come back in the order asked.
func runHosts(t *testing.T, plan *roles.Plan, hosts []*inventory.Host, fleet Fleet, opts RunOptions) map[string]HostResult {
	t.Helper()
	if opts.RollbackAfter == 0 {
		opts.RollbackAfter = testRollbackAfter
	}
	if opts.Poll == 0 {
		opts.Poll = testPoll
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := Run(ctx, plan, hosts, fleet, opts)
	if len(res) != len(hosts) {
		t.Fatalf("Run returned %d results for %d hosts", len(res), len(hosts))
	}
	out := map[string]HostResult{}
	for i, r := range res {
		if r.Host != hosts[i].Name {
			t.Errorf("result %d is for %q, want %q (the order hosts were given in)", i, r.Host, hosts[i].Name)
		}
		out[r.Host] = r
	}
	return out
}

// runAll runs the pipeline on every host of the plan.
func runAll(t *testing.T, plan *roles.Plan, fleet Fleet, opts RunOptions) map[string]HostResult {
	t.Helper()
	return runHosts(t, plan, plan.Inventory.Hosts, fleet, opts)
}

// statuses returns every host of plan with status s, except as overridden.
func statuses(plan *roles.Plan, s Status, except map[string]Status) map[string]Status {
	out := map[string]Status{}
	for _, h := range plan.Inventory.Hosts {
		out[h.Name] = s
	}
	for name, s := range except {
		out[name] = s
	}
	return out
}

func checkStatuses(t *testing.T, res map[string]HostResult, want map[string]Status) {
	t.Helper()
	got := map[string]Status{}
	var errs strings.Builder
	for name, r := range res {
		got[name] = r.Status
		if r.Err != nil {
			errs.WriteString("\n  " + r.Err.Error())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s\nerrors:%s", diff, errs.String())
	}
}

func policyOf(t *testing.T, plan *roles.Plan, host string) *roles.Policy {
	t.Helper()
	pol, ok := plan.Policy(host)
	if !ok {
		t.Fatalf("no policy for %s", host)
	}
	return pol
}

// checkEnforced asserts that a host runs and persists its policy, and
// records it as applied.
func checkEnforced(t *testing.T, plan *roles.Plan, h *fakeHost) {
	t.Helper()
	pol := policyOf(t, plan, h.name)
	s := h.state()
	if s.Live4 != policy.Canonical(string(pol.V4)) || s.Live6 != policy.Canonical(string(pol.V6)) {
		t.Errorf("%s: live rules are not the policy:\n%s%s", h.name, s.Live4, s.Live6)
	}
	if s.Files[fileRulesV4] != string(pol.V4) || s.Files[fileRulesV6] != string(pol.V6) {
		t.Errorf("%s: rules.v4/rules.v6 are not the policy:\n%s%s", h.name, s.Files[fileRulesV4], s.Files[fileRulesV6])
	}
	if got, want := s.Files[fileApplied], change.Digest(pol)+"\n"; got != want {
		t.Errorf("%s: %s = %q, want %q", h.name, fileApplied, got, want)
	}
	if !s.Persistent {
		t.Errorf("%s: iptables-persistent is not installed", h.name)
	}
}

func TestPushFirstRunAppliesEverywhere(t *testing.T) {
	t.Parallel()
	plan, fleet := newTestPlan(t)
	before := factsOf(fleet)
	res := runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, nil))

	for _, h := range plan.Inventory.Hosts {
		r, fh := res[h.Name], fleet.host(h.Name)
		if r.Err != nil || r.Stage != "" {
			t.Errorf("%s: stage %q, err %v", h.Name, r.Stage, r.Err)
		}
		if r.Role != h.Role || r.Backend != "nf_tables" || !r.Persisted {
			t.Errorf("%s: role %q, backend %q, persisted %v; want %q, nf_tables, true", h.Name, r.Role, r.Backend, r.Persisted, h.Role)
		}
		checkEnforced(t, plan, fh)
		s := fh.state()
		if s.Restores != 1 || s.Rollbacks != 0 || s.Installs != 0 {
			t.Errorf("%s: %d restores, %d rollbacks, %d installs; want 1, 0, 0", h.Name, s.Restores, s.Rollbacks, s.Installs)
		}
		if !s.Decided {
			t.Errorf("%s: the guard was never disarmed", h.Name)
		}
		// The fewest round trips: the read, the apply, and the confirm
		// (with the persistence) over a fresh connection. The tunnel is
		// read early as well, while the others are at work (an unchanged
		// one is done then), and again in its turn, to decide on what it
		// has then.
		ran, opened := []string{"facts", "apply", "confirm"}, []string{"open", "fresh"}
		if plan.Inventory.IsBastion(h) {
			ran, opened = slices.Concat([]string{"facts"}, ran), slices.Concat([]string{"open"}, opened)
		}
		if !slices.Equal(s.Ran, ran) || !slices.Equal(s.Opened, opened) {
			t.Errorf("%s: ran %v over %v; want %v over %v: facts, apply over one connection, confirm over a fresh one", h.Name, s.Ran, s.Opened, ran, opened)
		}
		checkDecided(t, plan, r, before[h.Name], RunOptions{})
	}
}

// checkDecided asserts that a host's result reports what the decision
// made of the facts it read (the counts, the diff and the unknown chains
// are the decision's, tested in package change).
func checkDecided(t *testing.T, plan *roles.Plan, r HostResult, f remote.Facts, opts RunOptions) {
	t.Helper()
	c := change.Decide(plan.Inventory, policyOf(t, plan, r.Host), f, change.Options{ForceOwn: opts.ForceOwn})
	if r.Added != c.Added || r.Removed != c.Removed || r.Diff != c.Diff || !slices.Equal(r.Unknown, c.Unknown) {
		t.Errorf("%s: added %d, removed %d, unknown %v, diff:\n%s\nwant the decision's: %d, %d, %v, diff:\n%s",
			r.Host, r.Added, r.Removed, r.Unknown, r.Diff, c.Added, c.Removed, c.Unknown, c.Diff)
	}
	if c.Action != change.None && (r.Diff == "" || r.Added+r.Removed == 0) {
		t.Errorf("%s: %s with no diff", r.Host, c.Action)
	}
}

// factsOf is what every host of the fleet tells now.
func factsOf(fleet *fakeFleet) map[string]remote.Facts {
	out := map[string]remote.Facts{}
	for name, h := range fleet.hosts {
		out[name] = h.readFacts()
	}
	return out
}

func TestPushSecondRunIsUnchanged(t *testing.T) {
	plan, fleet := newTestPlan(t)
	checkStatuses(t, runAll(t, plan, fleet, RunOptions{}), statuses(plan, Applied, nil))

	for _, dry := range []bool{false, true} {
		fleet.resetCounters()
		res := runAll(t, plan, fleet, RunOptions{DryRun: dry})
		checkStatuses(t, res, statuses(plan, Unchanged, nil))
		for name, r := range res {
			if r.Added != 0 || r.Removed != 0 || r.Diff != "" || !r.Persisted || r.Err != nil {
				t.Errorf("dry run %v: %s: added %d, removed %d, persisted %v, err %v, diff:\n%s", dry, name, r.Added, r.Removed, r.Persisted, r.Err, r.Diff)
			}
			s := fleet.host(name).state()
			if s.Restores != 0 || s.Writes != 0 || !slices.Equal(s.Ran, []string{"facts"}) || !slices.Equal(s.Opened, []string{"open"}) {
				t.Errorf("dry run %v: %s: %d restores, %d file writes, ran %v; want none, only facts", dry, name, s.Restores, s.Writes, s.Ran)
			}
		}
		if n := fleet.reconnectCount(); n != 0 {
			t.Errorf("dry run %v: %d reconnects, want 0: nothing changed on the tunnel", dry, n)
		}
	}
}

func TestPushDryRunChangesNothing(t *testing.T) {
	plan, fleet := newTestPlan(t)
	before := map[string]fakeState{}
	for name, h := range fleet.hosts {
		before[name] = h.state()
	}
	facts := factsOf(fleet)
	res := runAll(t, plan, fleet, RunOptions{DryRun: true})
	checkStatuses(t, res, statuses(plan, Pending, nil))

	for _, h := range plan.Inventory.Hosts {
		r := res[h.Name]
		checkDecided(t, plan, r, facts[h.Name], RunOptions{})
		if r.Persisted || r.Err != nil {
			t.Errorf("%s: persisted %v, err %v; want false, nil", h.Name, r.Persisted, r.Err)
		}
		after := fleet.host(h.Name).state()
		if !slices.Equal(after.Ran, []string{"facts"}) || after.Restores != 0 || after.Writes != 0 {
			t.Errorf("%s: ran %v, %d restores, %d writes; want only facts", h.Name, after.Ran, after.Restores, after.Writes)
		}
		after.Ran, after.Opened = nil, nil
		if diff := cmp.Diff(before[h.Name], after); diff != "" {
			t.Errorf("%s: the dry run changed the host (-before +after):\n%s", h.Name, diff)
		}
	}
	if ev := fleet.snapshotEvents(); len(ev) != 0 {
		t.Errorf("dry run applied or reconnected: %v", ev)
	}
}

// Drift of fwpush's own rules is repaired: the host reports "drift
// repaired" when it records this very policy as applied, "applied" when
// the policy is new to it; the rules files, which hold the policy, are not
// written again, and the record only when it changes.
func TestPushDrift(t *testing.T) {
	const extra = "-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT\n"
	for _, tc := range []struct {
		name    string
		applied string // what the host says fwpush applied last; "" keeps it
		want    Status
	}{
		{"hand edit of fwpush's rules", "", DriftRepaired},
		{"rules of an older policy", "sha256:older\n", Applied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			checkStatuses(t, runAll(t, plan, fleet, RunOptions{}), statuses(plan, Applied, nil))
			fleet.resetCounters()
			h := fleet.host("app-2")
			h.set(func(h *fakeHost) {
				h.live4 = strings.Replace(h.live4, "COMMIT\n", extra+"COMMIT\n", 1)
				if tc.applied != "" {
					h.files[fileApplied] = tc.applied
				}
			})
			before := h.readFacts()

			res := runAll(t, plan, fleet, RunOptions{})
			checkStatuses(t, res, statuses(plan, Unchanged, map[string]Status{"app-2": tc.want}))
			r := res["app-2"]
			checkDecided(t, plan, r, before, RunOptions{})
			if !r.Persisted || r.Err != nil {
				t.Errorf("app-2: persisted %v, err %v", r.Persisted, r.Err)
			}
			checkEnforced(t, plan, h)
			s := h.state()
			if s.Restores != 1 {
				t.Errorf("app-2: %d restores, want 1", s.Restores)
			}
			// rules.v4 and rules.v6 still hold the policy: not rewritten.
			for _, f := range []string{fileRulesV4, fileRulesV6} {
				if n := s.WriteCounts[f]; n != 0 {
					t.Errorf("app-2: %s written %d times, want 0", f, n)
				}
			}
			if got, want := s.WriteCounts[fileApplied], map[bool]int{true: 1, false: 0}[tc.applied != ""]; got != want {
				t.Errorf("app-2: %s written %d times, want %d", fileApplied, got, want)
			}
		})
	}
}

// A chain nobody declared that lets everyone in, and where it goes in a
// canonical table.
func withBackdoor(live string) string {
	live = strings.Replace(live, ":OUTPUT ", ":backdoor -\n:OUTPUT ", 1)
	live = strings.Replace(live, "-A INPUT ", "-A INPUT -j backdoor\n-A INPUT ", 1)
	return strings.Replace(live, "COMMIT\n", "-A backdoor -j ACCEPT\nCOMMIT\n", 1)
}

// A chain no preserve pattern keeps is drift: a dry run reports it (and
// names it), a run refuses the host and changes nothing there while the
// others are applied (another drifted host is repaired), and --force-own
// removes it.
func TestPushUnknownChains(t *testing.T) {
	t.Parallel()
	plan, fleet := newTestPlan(t)
	checkStatuses(t, runAll(t, plan, fleet, RunOptions{}), statuses(plan, Applied, nil))
	h := fleet.host("app-1")
	h.set(func(h *fakeHost) { h.live4 = withBackdoor(h.live4) })
	before := h.state()
	fleet.resetCounters()

	res := runAll(t, plan, fleet, RunOptions{DryRun: true})
	checkStatuses(t, res, statuses(plan, Unchanged, map[string]Status{"app-1": Pending}))
	if r := res["app-1"]; !slices.Equal(r.Unknown, []string{"backdoor"}) || !strings.Contains(r.Diff, "-:backdoor -\n") {
		t.Errorf("dry run: unknown chains %v, diff:\n%s", r.Unknown, r.Diff)
	}

	fleet.host("app-2").set(func(h *fakeHost) {
		h.live4 = strings.Replace(h.live4, "COMMIT\n", "-A INPUT -s 198.51.100.7/32 -j ACCEPT\nCOMMIT\n", 1)
	})
	res = runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Unchanged, map[string]Status{"app-1": Failed, "app-2": DriftRepaired}))
	r := res["app-1"]
	if r.Stage != "unknown chains" || r.Err == nil || !strings.HasPrefix(r.Err.Error(), "host app-1: unknown chains: backdoor: ") || !strings.Contains(r.Err.Error(), "--force-own") {
		t.Errorf("refusal: stage %q, error %v; want the chain and --force-own", r.Stage, r.Err)
	}
	if s := h.state(); s.Live4 != before.Live4 || s.Restores != 0 || s.Writes != 0 || slices.Contains(s.Ran, "apply") {
		t.Errorf("app-1 changed: %d restores, %d writes, ran %v", s.Restores, s.Writes, s.Ran)
	}

	fleet.resetCounters()
	res = runAll(t, plan, fleet, RunOptions{ForceOwn: true})
	checkStatuses(t, res, statuses(plan, Unchanged, map[string]Status{"app-1": DriftRepaired}))
	checkEnforced(t, plan, h)
	res = runAll(t, plan, fleet, RunOptions{DryRun: true})
	checkStatuses(t, res, statuses(plan, Unchanged, nil))
}

// A host the decision refuses is left as it is, after the read alone,
// while the others are applied: one the policy cannot work on (preflight),
// or where something else manages the firewall, is refused by a dry run
// too; one whose apply would remove chains fwpush does not know is shown
// by a dry run as a change, and refused by a run. What --force-own
// overrides, it overrides. (What refuses what, and why, is package
// change's table tests.)
func TestPushRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, host string
		set        func(h *fakeHost)
		forceOwn   bool
		dry, run   Status
		stage      string
	}{
		{"missing interface", "app-2", func(h *fakeHost) { h.facts.Links = []string{"eth0", "lo"} }, false, Failed, Failed, "preflight"},
		{"session from a source the policy drops", "db-1", func(h *fakeHost) {
			h.facts.Conn = remote.Conn{Client: netip.MustParseAddr("198.18.0.99"), Server: netip.MustParseAddr("198.18.0.31"), Port: 22}
			h.facts.Addrs = map[netip.Addr]string{netip.MustParseAddr("198.18.0.31"): "eth1"}
		}, false, Failed, Failed, "preflight"},
		{"legacy rules beside nf_tables, --force-own", "db-1", func(h *fakeHost) {
			h.facts.OtherBackend, h.facts.Other4 = "legacy", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 198.51.100.9/32 -j DROP\nCOMMIT\n"
		}, true, Failed, Failed, "backends"},
		{"ufw enabled", "db-1", func(h *fakeHost) { h.facts.Managers = []remote.Manager{{Name: "ufw", How: "active"}} }, false, Failed, Failed, "other firewall"},
		{"ufw enabled, --force-own", "db-1", func(h *fakeHost) { h.facts.Managers = []remote.Manager{{Name: "ufw", How: "active"}} }, true, Pending, Applied, ""},
		{"a backdoor", "app-1", func(h *fakeHost) { h.live4 = withBackdoor(h.live4) }, false, Pending, Failed, "unknown chains"},
		{"a backdoor, --force-own", "app-1", func(h *fakeHost) { h.live4 = withBackdoor(h.live4) }, true, Pending, Applied, ""},
		// A chain that a preserved one (app preserves DOCKER*) jumps to.
		{"an unknown chain a preserved one jumps to, --force-own", "app-1", func(h *fakeHost) {
			h.live4 = strings.Replace(h.live4, ":OUTPUT ACCEPT\n", ":OUTPUT ACCEPT\n:DOCKER-USER -\n:helper -\n", 1)
			h.live4 = strings.Replace(h.live4, "COMMIT\n", "-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j helper\n-A helper -j RETURN\nCOMMIT\n", 1)
		}, true, Pending, Failed, "unknown chains"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			h := fleet.host(tc.host)
			h.set(tc.set)
			before := h.state()
			for _, dry := range []bool{true, false} {
				fleet.resetCounters()
				res := runAll(t, plan, fleet, RunOptions{DryRun: dry, ForceOwn: tc.forceOwn})
				want, others := tc.run, Applied
				if dry {
					want, others = tc.dry, Pending
				}
				checkStatuses(t, res, statuses(plan, others, map[string]Status{tc.host: want}))
				r := res[tc.host]
				if want != Failed {
					continue
				}
				if r.Stage != tc.stage || r.Err == nil {
					t.Errorf("dry run %v: stage %q, error %v; want %q", dry, r.Stage, r.Err, tc.stage)
				}
				var refusal *change.Refusal
				if !errors.As(r.Err, &refusal) || !strings.Contains(r.Err.Error(), "host "+tc.host+": "+tc.stage+": "+refusal.Reason) {
					t.Errorf("dry run %v: error %v; want the decision's refusal, the host and the stage", dry, r.Err)
				}
				if s := h.state(); s.Live4 != before.Live4 || s.Restores != 0 || s.Writes != 0 || !slices.Equal(s.Ran, []string{"facts"}) {
					t.Errorf("dry run %v: %s changed: ran %v, %d restores, %d writes", dry, tc.host, s.Ran, s.Restores, s.Writes)
				}
			}
		})
	}
}

func TestPushUnreachableHost(t *testing.T) {
	plan, fleet := newTestPlan(t)
	fleet.host("db-1").set(func(h *fakeHost) { h.unreachable = true })
	res := runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"db-1": Unreachable}))
	r := res["db-1"]
	if r.Stage != "connect" || r.Err == nil || !strings.Contains(r.Err.Error(), "host db-1") || r.Status.OK() {
		t.Errorf("db-1: stage %q, err %v, ok %v", r.Stage, r.Err, r.Status.OK())
	}
	if ran := fleet.host("db-1").state().Ran; len(ran) != 0 {
		t.Errorf("db-1 ran %v", ran)
	}
	for _, name := range []string{"tunnel-1", "lb-1", "app-1", "app-2"} {
		checkEnforced(t, plan, fleet.host(name))
	}
}

func TestPushTestFailure(t *testing.T) {
	plan, fleet := newTestPlan(t)
	const stderr = "iptables-restore v1.8.9 (nf_tables): line 7: RULE_APPEND failed (No such file or directory): rule in chain INPUT\n"
	h := fleet.host("app-2")
	h.set(func(h *fakeHost) { h.testStderr = stderr })
	before := h.state()

	res := runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"app-2": Failed}))
	r := res["app-2"]
	if !strings.Contains(r.Stage, "test") {
		t.Errorf("app-2: stage %q, want one naming the test", r.Stage)
	}
	var re *transport.RemoteError
	if !errors.As(r.Err, &re) || string(re.Stderr) != stderr {
		t.Errorf("app-2: err %v, want a *RemoteError with the stderr", r.Err)
	}
	if r.Err == nil || !strings.Contains(r.Err.Error(), "line 7: RULE_APPEND failed") || !strings.Contains(r.Err.Error(), "app-2") {
		t.Errorf("app-2: err %v does not name the host and what iptables said", r.Err)
	}
	s := h.state()
	if s.Restores != 0 || s.Live4 != before.Live4 || s.Live6 != before.Live6 {
		t.Errorf("app-2: %d restores, live rules changed: %v", s.Restores, s.Live4 != before.Live4)
	}
	if _, ok := s.Files[fileRulesV4]; ok {
		t.Errorf("app-2: rules.v4 written after a failed test")
	}
}

func TestPushRollsBackWhenSSHIsCut(t *testing.T) {
	t.Parallel()
	for _, cut := range []string{"app-1", "tunnel-1"} {
		t.Run(cut, func(t *testing.T) {
			t.Parallel()
			plan, fleet := newTestPlan(t)
			h := fleet.host(cut)
			h.set(func(h *fakeHost) { h.cutAfterApply = true })
			before := h.state()

			start := time.Now()
			res := runAll(t, plan, fleet, RunOptions{RollbackAfter: cutRollbackAfter})
			checkStatuses(t, res, statuses(plan, Applied, map[string]Status{cut: RolledBack}))
			r := res[cut]
			// The guard and fwpush's last try race at the deadline: either
			// fwpush sees the host come back, or its confirm loses to the guard.
			if r.Stage != "confirm" || r.Err == nil || r.Persisted ||
				!strings.Contains(r.Err.Error(), "reachable again") && !strings.Contains(r.Err.Error(), "guard restored the old rules") {
				t.Errorf("%s: stage %q, persisted %v, err %v", cut, r.Stage, r.Persisted, r.Err)
			}
			s := h.state()
			if s.Live4 != before.Live4 || s.Live6 != before.Live6 {
				t.Errorf("%s: the old rules are not back:\n%s%s", cut, s.Live4, s.Live6)
			}
			if s.Rollbacks != 1 || h.down() {
				t.Errorf("%s: %d rollbacks, down %v; want 1, false", cut, s.Rollbacks, h.down())
			}
			for _, f := range []string{fileRulesV4, fileRulesV6, fileApplied} {
				if _, ok := s.Files[f]; ok {
					t.Errorf("%s: %s written for a policy that was rolled back", cut, f)
				}
			}
			// A hang guard, not a measure: a confirm that never gave up on
			// the cut host would retry for ever; five times the guard's
			// delay proves only that the run ends.
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("run took %v", took)
			}
			// The next run, SSH no longer cut, applies the policy: the
			// host records nothing of an apply rolled back, so that what
			// it has is not taken for drift of that policy.
			h.set(func(h *fakeHost) { h.cutAfterApply = false })
			ih, _ := plan.Inventory.Host(cut)
			res = runHosts(t, plan, []*inventory.Host{ih}, fleet, RunOptions{RollbackAfter: cutRollbackAfter})
			checkStatuses(t, res, map[string]Status{cut: Applied})
		})
	}
}

// The guard gets the delay asked for (the host protocol rounds it up to
// whole seconds), and fwpush waits for it no longer.
func TestPushGuardDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ after, want time.Duration }{
		{300 * time.Millisecond, time.Second},
		{1500 * time.Millisecond, 2 * time.Second},
		{30 * time.Second, 30 * time.Second},
	} {
		t.Run(tc.after.String(), func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			runHosts(t, plan, plan.Inventory.HostsOf("db"), fleet, RunOptions{RollbackAfter: tc.after})
			if got := fleet.host("db-1").state().GuardDelay; got != tc.want {
				t.Errorf("rollback_after %v: the guard got %v, want %v", tc.after, got, tc.want)
			}
		})
	}
}

func TestPushDetachedApplyFails(t *testing.T) {
	plan, fleet := newTestPlan(t)
	h := fleet.host("lb-1")
	h.set(func(h *fakeHost) {
		h.applyLog = "iptables-restore: line 12 failed"
		h.applyDelay = 100 * time.Millisecond
	})
	before := h.state()

	res := runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"lb-1": Failed}))
	r := res["lb-1"]
	if r.Stage != "apply" || r.Err == nil || !strings.Contains(r.Err.Error(), "line 12 failed") {
		t.Errorf("lb-1: stage %q, err %v", r.Stage, r.Err)
	}
	s := h.state()
	if s.Live4 != before.Live4 || s.Live6 != before.Live6 {
		t.Errorf("lb-1: the old rules are not back:\n%s", s.Live4)
	}
	if !s.Decided {
		t.Errorf("lb-1: the guard is still armed")
	}
	for _, f := range []string{fileRulesV4, fileRulesV6, fileApplied} {
		if _, ok := s.Files[f]; ok {
			t.Errorf("lb-1: %s written after a failed apply", f)
		}
	}
}

func TestPushInstallsPersistence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		rulesInPlace bool
		wantRestores int
	}{
		{"fresh host", false, 1},
		{"rules in place, package missing", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			pol := policyOf(t, plan, "app-1")
			h := fleet.host("app-1")
			h.set(func(h *fakeHost) {
				h.persistent = false
				if tc.rulesInPlace {
					h.live4, h.live6 = policy.Canonical(string(pol.V4)), policy.Canonical(string(pol.V6))
					h.sets = h.ipset("", string(pol.IPSets()))
				}
			})
			res := runAll(t, plan, fleet, RunOptions{})
			checkStatuses(t, res, statuses(plan, Applied, nil))
			if r := res["app-1"]; !r.Persisted || r.Err != nil {
				t.Errorf("app-1: persisted %v, err %v", r.Persisted, r.Err)
			}
			checkEnforced(t, plan, h)
			s := h.state()
			if s.Installs != 1 || s.Restores != tc.wantRestores {
				t.Errorf("app-1: %d installs, %d restores; want 1, %d", s.Installs, s.Restores, tc.wantRestores)
			}
			// One round trip for everything: with the confirm when the
			// rules change, on its own when they are already in place.
			want := []string{"facts", "apply", "confirm"}
			if tc.rulesInPlace {
				want = []string{"facts", "persist"}
			}
			if !slices.Equal(s.Ran, want) {
				t.Errorf("app-1 ran %v, want %v", s.Ran, want)
			}
			if n := fleet.host("app-2").state().Installs; n != 0 {
				t.Errorf("app-2, which has iptables-persistent: %d installs", n)
			}
		})
	}
}

func TestPushTunnelLast(t *testing.T) {
	t.Parallel()
	plan, fleet := newTestPlan(t)
	// The tunnel first, to show that Run reorders rather than keeps order.
	hosts := []*inventory.Host{plan.Inventory.Tunnel()}
	for _, h := range plan.Inventory.Hosts {
		if h.Name != "tunnel-1" {
			hosts = append(hosts, h)
		}
	}
	res := runHosts(t, plan, hosts, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, nil))

	applied := fleet.applied()
	if len(applied) != len(hosts) || applied[len(applied)-1] != "tunnel-1" {
		t.Errorf("applied in order %v, want the tunnel last", applied)
	}
	events := fleet.snapshotEvents()
	tunnelApply := slices.Index(events, "apply tunnel-1")
	firstReconnect := slices.Index(events, "reconnect")
	if firstReconnect < 0 || firstReconnect < tunnelApply {
		t.Errorf("events %v: want Reconnect only after the tunnel's apply", events)
	}
	// The tunnel's new rules ended fwpush's connection to it; the run
	// replaced it and left a working one behind.
	if err := fleet.tunnelConn(-1); err != nil || fleet.tunnelGen == 0 {
		t.Errorf("tunnel connection after the run: %v, %d reconnections", err, fleet.tunnelGen)
	}

	// Without the tunnel in the run, the tunnel connection is left alone.
	plan, fleet = newTestPlan(t)
	res = runHosts(t, plan, hosts[1:], fleet, RunOptions{})
	for name, r := range res {
		if r.Status != Applied {
			t.Errorf("%s: %s: %v", name, r.Status, r.Err)
		}
	}
	if n := fleet.reconnectCount(); n != 0 {
		t.Errorf("%d reconnects in a run without the tunnel", n)
	}
}

func TestPushParallelLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ parallel, want int32 }{{1, 1}, {2, 2}, {3, 3}} {
		t.Run(strconv.Itoa(int(tc.parallel)), func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			for _, h := range fleet.hosts {
				h.set(func(h *fakeHost) { h.factsDelay = 30 * time.Millisecond })
			}
			res := runAll(t, plan, fleet, RunOptions{Parallel: int(tc.parallel)})
			checkStatuses(t, res, statuses(plan, Applied, nil))
			if got := fleet.maxInFlight.Load(); got != tc.want {
				t.Errorf("at most %d hosts in flight, want %d", got, tc.want)
			}
			if n := fleet.inFlight.Load(); n != 0 {
				t.Errorf("%d hosts still have open sessions after the run", n)
			}
		})
	}
}

// TestPushSteps: OnStep names each step as a host begins it, so that a
// terminal can show where every host in flight is.
func TestPushSteps(t *testing.T) {
	plan, fleet := newTestPlan(t)
	var mu sync.Mutex
	steps := map[string][]string{}
	onStep := func(host, step string) {
		mu.Lock()
		defer mu.Unlock()
		steps[host] = append(steps[host], step)
	}
	runAll(t, plan, fleet, RunOptions{OnStep: onStep})
	for _, h := range plan.Inventory.Hosts {
		if want := []string{StepConnect, StepRead, StepApply, StepConfirm}; !slices.Equal(steps[h.Name], want) {
			t.Errorf("first run, %s: steps %v, want %v", h.Name, steps[h.Name], want)
		}
	}
	// Rules in place but files gone: only persisted.
	fleet.host("db-1").set(func(h *fakeHost) { delete(h.files, "/etc/iptables/rules.v4") })
	steps = map[string][]string{}
	res := runAll(t, plan, fleet, RunOptions{OnStep: onStep})
	if want := []string{StepConnect, StepRead, StepPersist}; !slices.Equal(steps["db-1"], want) || res["db-1"].Status != Applied {
		t.Errorf("files only, db-1: %s, steps %v, want %v", res["db-1"].Status, steps["db-1"], want)
	}
	if want := []string{StepConnect, StepRead}; !slices.Equal(steps["app-1"], want) {
		t.Errorf("unchanged, app-1: steps %v, want %v", steps["app-1"], want)
	}
}

// TestPushUnreachedFleet: when fwpush's own side fails (no key, the tunnel
// down), no host is tried, the tunnel included, and each says so with the
// one cause.
func TestPushUnreachedFleet(t *testing.T) {
	plan, _ := newTestPlan(t)
	cause := errors.New("no SSH key: identity /nowhere does not exist")
	res := runAll(t, plan, Unreached(cause), RunOptions{})
	checkStatuses(t, res, statuses(plan, NotTried, nil))
	for name, r := range res {
		var nt *NotTriedError
		if !errors.As(r.Err, &nt) || !errors.Is(r.Err, cause) || r.Stage != "connect" || r.Status.OK() {
			t.Errorf("%s: stage %q, err %v; want not tried, wrapping the cause", name, r.Stage, r.Err)
		}
	}
}

// killedRunToken is the token of killedRun's run.
const killedRunToken = "0badc0de"

// killedRun leaves on h what a run killed after its apply leaves: the
// rules of pol applied under a guard nobody confirms, started ago.
func killedRun(t *testing.T, h *fakeHost, pol *roles.Policy, ago, rollbackAfter time.Duration) {
	t.Helper()
	c := h.open(func() error { return nil })
	defer c.Close()
	// As the pusher loads it: flushing the chains it owns.
	doc := func(d []byte) []byte { return []byte(policy.Split{}.Merge(policy.Canonical(string(d)))) }
	if err := c.Apply(t.Context(), remote.Apply{Token: killedRunToken, RollbackAfter: rollbackAfter, V4: doc(pol.V4), V6: doc(pol.V6)}); err != nil {
		t.Fatal(err)
	}
	h.set(func(h *fakeHost) { h.started = h.started.Add(-ago) })
}

// A run killed after its apply leaves a guard armed. The next run settles
// it before it decides anything: it keeps rules that are the policy (and
// disarms the guard, which would otherwise revert them later), and rolls
// back anything else (here, to the policy the first run applied).
func TestPushSettlesAKilledRun(t *testing.T) {
	for _, tc := range []struct {
		name        string
		killedRules func(plan *roles.Plan) *roles.Policy
		want        Status
		settled     string
	}{
		{"its rules are the policy", func(plan *roles.Plan) *roles.Policy { return policyOf(t, plan, "db-1") }, Unchanged, "kept"},
		{"its rules are another policy", func(plan *roles.Plan) *roles.Policy {
			pol := *policyOf(t, plan, "db-1")
			pol.V4 = bytes.Replace(pol.V4, []byte("--dport 3306"), []byte("--dport 3307"), 1)
			return &pol
		}, Unchanged, "rolledback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, fleet := newTestPlan(t)
			db := plan.Inventory.HostsOf("db")
			checkStatuses(t, runHosts(t, plan, db, fleet, RunOptions{}), map[string]Status{"db-1": Applied})
			h := fleet.host("db-1")
			killedRun(t, h, tc.killedRules(plan), time.Minute, 30*time.Second)
			fleet.resetCounters()

			res := runHosts(t, plan, db, fleet, RunOptions{})
			checkStatuses(t, res, map[string]Status{"db-1": tc.want})
			s := h.state()
			if h.settled != tc.settled || !s.Decided {
				t.Errorf("the killed run's apply was settled %q (decided %v), want %q", h.settled, s.Decided, tc.settled)
			}
			checkEnforced(t, plan, h)
			if !slices.Contains(s.Ran, "settle") {
				t.Errorf("ran %v, want a settle", s.Ran)
			}
		})
	}
}

// A run at work on a host (its apply not confirmed yet, but recent) is
// waited for, not settled: here its guard fires while the second run
// waits, and the second run then applies. The guard fires when the test
// says, once the second run has read the host twice (it waited), not by
// a timer: a guard's time that had passed when the host was read, its
// timer not yet run (a loaded machine), would be taken for gone and
// settled, as it must be (see gone).
func TestPushWaitsForARunAtWork(t *testing.T) {
	plan, fake := newTestPlan(t)
	db := plan.Inventory.HostsOf("db")
	h := fake.host("db-1")
	other := *policyOf(t, plan, "db-1")
	other.V4 = bytes.Replace(other.V4, []byte("--dport 3306"), []byte("--dport 3307"), 1)
	killedRun(t, h, &other, 0, time.Hour)

	reads := 0
	fleet := &readFleet{Fleet: fake, read: func() {
		if reads++; reads == 2 {
			h.fireGuard(killedRunToken)
		}
	}}
	res := runHosts(t, plan, db, fleet, RunOptions{})
	checkStatuses(t, res, map[string]Status{"db-1": Applied})
	s := h.state()
	if h.settled != "" || s.Rollbacks != 1 || slices.Contains(s.Ran, "settle") || reads < 2 {
		t.Errorf("settled %q, %d rollbacks, ran %v, %d reads: want the other run waited for and its own guard to decide", h.settled, s.Rollbacks, s.Ran, reads)
	}
	checkEnforced(t, plan, h)
}

// readFleet calls read before each read of a host's facts, from the
// host's goroutine: a test of one host needs no lock.
type readFleet struct {
	Fleet
	read func()
}

func (f *readFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	c, err := f.Fleet.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	return &readConn{Host: c, read: f.read}, nil
}

type readConn struct {
	Host
	read func()
}

func (c *readConn) Facts(ctx context.Context) (remote.Facts, error) {
	c.read()
	return c.Host.Facts(ctx)
}

func TestGone(t *testing.T) {
	now := time.Unix(1764630000, 0)
	for _, tc := range []struct {
		name string
		g    remote.Guard
		want bool
	}{
		{"applied a minute ago, never confirmed", remote.Guard{Status: "ok", Started: now.Add(-time.Minute), FireAt: now.Add(time.Minute), Now: now}, true},
		{"its guard's time has passed", remote.Guard{Status: "", Started: now.Add(-time.Second), FireAt: now.Add(-time.Second), Now: now}, true},
		{"applied a second ago: its fwpush is confirming", remote.Guard{Status: "ok", Started: now.Add(-time.Second), FireAt: now.Add(time.Minute), Now: now}, false},
		{"still applying", remote.Guard{Status: "", Started: now.Add(-time.Minute), FireAt: now.Add(time.Minute), Now: now}, false},
		{"the host told no times", remote.Guard{Status: "ok", Now: now}, false},
	} {
		if got := gone(tc.g, 3*time.Second); got != tc.want {
			t.Errorf("%s: gone %v, want %v", tc.name, got, tc.want)
		}
	}
}
