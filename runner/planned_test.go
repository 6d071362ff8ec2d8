package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/roles"
)

// planOf makes a saved plan's changes the way fwpush plan does: a dry run
// of every host of plan, each host's decided change.
func planOf(t *testing.T, plan *roles.Plan, fleet *fakeFleet, opts RunOptions) map[string]*change.Change {
	t.Helper()
	opts.DryRun = true
	out := map[string]*change.Change{}
	for name, r := range runAll(t, plan, fleet, opts) {
		if r.Change == nil {
			t.Fatalf("the dry run decided nothing for %s: %v", name, r.Err)
		}
		out[name] = r.Change
	}
	return out
}

// A saved plan is applied as it was made: the hosts in the state it read
// get exactly its documents; a host changed by hand since is left
// untouched, stale, while the others are applied; so is a host still in
// the plan's state whose change the plan says nothing of.
func TestPushPlanned(t *testing.T) {
	plan, fleet := newTestPlan(t)
	planned := planOf(t, plan, fleet, RunOptions{})
	for name, c := range planned {
		if c.Action != change.Apply || c.Apply == nil || !strings.HasPrefix(c.State, "sha256:") {
			t.Fatalf("%s: planned %s, documents %v, state %q; want an apply from a known state", name, c.Action, c.Apply != nil, c.State)
		}
	}
	// wordpress-like app-2 is changed by hand after the plan.
	h := fleet.host("app-2")
	h.set(func(h *fakeHost) {
		h.live4 = strings.Replace(h.live4, "COMMIT\n", "-A INPUT -s 198.51.100.7/32 -j ACCEPT\nCOMMIT\n", 1)
	})
	before := h.state()
	fleet.resetCounters()

	res := runAll(t, plan, fleet, RunOptions{Planned: planned})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"app-2": Stale}))
	r := res["app-2"]
	if r.Stage != StageStale || r.Err == nil || !strings.Contains(r.Err.Error(), "its live rules differ from those the plan read") ||
		!strings.Contains(r.Err.Error(), "make a new plan") {
		t.Errorf("app-2: stage %q, error %v; want the plan's stage, the rules named, and what to do", r.Stage, r.Err)
	}
	if s := h.state(); s.Live4 != before.Live4 || s.Restores != 0 || s.Writes != 0 || strings.Join(s.Ran, " ") != "facts" {
		t.Errorf("app-2 was touched: %d restores, %d writes, ran %v", s.Restores, s.Writes, s.Ran)
	}
	for name, fh := range fleet.hosts {
		if name == "app-2" {
			continue
		}
		checkEnforced(t, plan, fh)
		if got := res[name].Change; got == nil || *got.Apply != *planned[name].Apply {
			t.Errorf("%s: the change made is not the plan's", name)
		}
	}

	// The same plan once more: every host it was made for has moved on.
	fleet.resetCounters()
	res = runAll(t, plan, fleet, RunOptions{Planned: planned})
	checkStatuses(t, res, statuses(plan, Stale, nil))
	if got := fleet.applied(); len(got) != 0 {
		t.Errorf("a plan applied twice applied %v again", got)
	}
}

// The hosts a plan leaves unchanged are read and left alone: unchanged
// while they are as the plan read them, stale once changed.
func TestPushPlannedUnchanged(t *testing.T) {
	plan, fleet := newTestPlan(t)
	checkStatuses(t, runAll(t, plan, fleet, RunOptions{}), statuses(plan, Applied, nil))
	planned := planOf(t, plan, fleet, RunOptions{})
	fleet.host("db-1").set(func(h *fakeHost) { delete(h.files, fileRulesV4) })
	fleet.resetCounters()

	res := runAll(t, plan, fleet, RunOptions{Planned: planned})
	checkStatuses(t, res, statuses(plan, Unchanged, map[string]Status{"db-1": Stale}))
	if got := res["db-1"].Err; got == nil || !strings.Contains(got.Error(), "its rules files, iptables-persistent or the record of what fwpush applied differ") {
		t.Errorf("db-1: %v; want the files named", got)
	}
	if w := fleet.host("db-1").state().Writes; w != 0 {
		t.Errorf("db-1: %d files written", w)
	}
}

// A host where the apply settles an earlier run's unconfirmed apply is
// stale, even when that leaves it as the plan read it: the plan was made
// while that apply's rules were loaded.
func TestPushPlannedSettled(t *testing.T) {
	plan, fleet := newTestPlan(t)
	db := plan.Inventory.HostsOf("db")
	checkStatuses(t, runHosts(t, plan, db, fleet, RunOptions{}), map[string]Status{"db-1": Applied})
	h := fleet.host("db-1")
	other := *policyOf(t, plan, "db-1")
	other.V4 = bytes.Replace(other.V4, []byte("--dport 3306"), []byte("--dport 3307"), 1)
	killedRun(t, h, &other, time.Minute, 30*time.Second)
	planned := planOf(t, plan, fleet, RunOptions{})
	fleet.resetCounters()

	res := runHosts(t, plan, db, fleet, RunOptions{Planned: planned})
	checkStatuses(t, res, map[string]Status{"db-1": Stale})
	if got := res["db-1"].Err; got == nil || !strings.Contains(got.Error(), "settled here after the plan was made") {
		t.Errorf("db-1: %v; want the settle named", got)
	}
	if h.settled != "rolledback" || h.state().Restores != 0 {
		t.Errorf("settled %q with %d restores: want the earlier apply rolled back and nothing applied", h.settled, h.state().Restores)
	}
}

// A plan made with --force-own takes the host over on apply; one made
// without it refuses the host's unknown chains on apply as a run does.
func TestPushPlannedForceOwn(t *testing.T) {
	for _, force := range []bool{false, true} {
		plan, fleet := newTestPlan(t)
		checkStatuses(t, runAll(t, plan, fleet, RunOptions{}), statuses(plan, Applied, nil))
		h := fleet.host("app-1")
		h.set(func(h *fakeHost) { h.live4 = withBackdoor(h.live4) })
		planned := planOf(t, plan, fleet, RunOptions{ForceOwn: force})
		fleet.resetCounters()
		res := runAll(t, plan, fleet, RunOptions{Planned: planned, ForceOwn: force})
		want := map[string]Status{"app-1": Failed}
		if force {
			want["app-1"] = DriftRepaired
		}
		checkStatuses(t, res, statuses(plan, Unchanged, want))
		if !force && res["app-1"].Stage != change.StageUnknownChains {
			t.Errorf("without --force-own: stage %q, want %q", res["app-1"].Stage, change.StageUnknownChains)
		}
	}
}

// A host missing from the plan's changes is not decided anew: it fails.
func TestPushPlannedMissingHost(t *testing.T) {
	plan, fleet := newTestPlan(t)
	planned := planOf(t, plan, fleet, RunOptions{})
	delete(planned, "db-1")
	fleet.resetCounters()
	res := runAll(t, plan, fleet, RunOptions{Planned: planned})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"db-1": Failed}))
	if s := fleet.host("db-1").state(); s.Restores != 0 {
		t.Errorf("db-1, not in the plan, was applied")
	}
}
