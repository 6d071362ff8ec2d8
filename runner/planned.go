package runner

import (
	"errors"
	"fmt"

	"github.com/fwpush/fwpush/change"
)

// StageStale is the stage of a host that a saved plan no longer fits.
const StageStale = "plan"

// stale is a host that a saved plan no longer fits, and why.
func stale(format string, args ...any) *stageError {
	return &stageError{Stale, StageStale, fmt.Errorf(format+"; it was left untouched: make a new plan", args...)}
}

// planned returns the change of the saved plan for the host, to be made in
// place of fresh, the change decided from what the host tells now: only
// while the host is in the state the plan was made on, and fresh is what
// the plan says. The plan was made with a dry run, which settles nothing:
// a host where this run settled an earlier run's apply had other rules
// when the plan read it, and is stale too. A host the decision refuses now
// (for what the state leaves out: a tool gone, an interface, a policy that
// would not accept this very session) fails as in any run.
func (p *pusher) planned(fresh change.Change, settled bool) (change.Change, error) {
	plan, ok := p.opts.Planned[p.host.Name]
	if !ok || plan == nil {
		return fresh, fail(StageStale, errors.New("the plan holds no change for this host"))
	}
	switch {
	case settled:
		return fresh, stale("an earlier run's unconfirmed apply was settled here after the plan was made: the plan read other rules")
	case fresh.State != plan.State:
		return fresh, stale("its firewall is no longer in the state the plan was made on: %s", whatChanged(plan, &fresh))
	case fresh.Digest != plan.Digest:
		return fresh, stale("its policy compiles to another one than the plan's")
	case fresh.Action == change.Refused:
		return fresh, refused(fresh.Refusal)
	case plan.Action == change.Refused:
		return fresh, stale("the plan refused this host (%s: %s), and it no longer does", plan.Refusal.Stage, plan.Refusal.Reason)
	case !sameChange(plan, &fresh):
		return fresh, stale("what it takes differs from the plan")
	}
	return *plan, nil
}

// whatChanged says what of a host's state differs between the plan and
// now, as far as the two changes tell.
func whatChanged(plan, now *change.Change) string {
	switch {
	case plan.Diff != now.Diff:
		return "its live rules differ from those the plan read"
	case plan.Persist != now.Persist || plan.Persisted != now.Persisted:
		return "its rules files, iptables-persistent or the record of what fwpush applied differ from what the plan read"
	case plan.Refusal == nil != (now.Refusal == nil):
		return "another firewall manager or backend came or went"
	}
	return "its rules, files or other firewall managers differ from what the plan read"
}

// sameChange reports whether two changes do the same to a host.
func sameChange(a, b *change.Change) bool {
	same := a.Action == b.Action && a.Digest == b.Digest && a.Persist == b.Persist &&
		(a.Apply == nil) == (b.Apply == nil) && (a.Refusal == nil) == (b.Refusal == nil)
	if same && a.Apply != nil {
		same = a.Apply.V4 == b.Apply.V4 && a.Apply.V6 == b.Apply.V6 && (a.Apply.Sets == nil) == (b.Apply.Sets == nil) &&
			(a.Apply.Sets == nil || *a.Apply.Sets == *b.Apply.Sets)
	}
	if same && a.Refusal != nil {
		same = a.Refusal.Stage == b.Refusal.Stage
	}
	return same
}
