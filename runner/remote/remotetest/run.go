package remotetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/live"
)

// What the steps of a case ask, beyond what a Step says.
const (
	// RollbackAfter is the delay of every guard the cases arm: long
	// enough that only a GuardFires step makes one fire.
	RollbackAfter = time.Minute
	// Lease is the lease of every run on the host lock: only a LeaseEnds
	// step ends one.
	Lease = time.Hour
	// Who runs fwpush, as Apply tells the host.
	Who = "op@stub pid 1"
	// ConfirmWait is how long Confirm waits on the host for the apply.
	ConfirmWait = 5 * time.Second
)

// LockWaitOr is how long Apply waits for another run's lock: s.LockWait,
// or 1s.
func (s Step) LockWaitOr() time.Duration {
	if s.LockWait != 0 {
		return s.LockWait
	}
	return time.Second
}

// A Driver takes a host under test through the steps of a case, in this
// package's terms: the real scripts on a stub host (runner/remote), or
// the protocol fake of runner's tests. Its functions are the protocol's
// methods (remote.Host's) with what a Step says, and what a test does to
// the host besides.
type Driver struct {
	Facts func(ctx context.Context) (live.Facts, error)
	// Apply applies s.V4 and s.V6 as run s.Token, under a guard of
	// RollbackAfter, for a Lease, waiting s.LockWaitOr() for the lock.
	Apply func(ctx context.Context, s Step) error
	// Confirm confirms run s.Token, waiting ConfirmWait, and persists as
	// s says; it returns the outcome, and the apply's log.
	Confirm func(ctx context.Context, s Step) (outcome, log string, err error)
	// ConfirmBy, when set, is Confirm that also says who the host names
	// as the decider (remote.Confirmation.By), which Run checks against
	// s.By: a driver that cannot tell leaves it nil, and Confirm is used.
	ConfirmBy func(ctx context.Context, s Step) (outcome, log, by string, err error)
	Persist   func(ctx context.Context, s Step) error
	Settle    func(ctx context.Context, s Step) (outcome string, err error)
	// FireGuard makes the guard of a run fire now, and waits until it has
	// done what it does; EndLease ends the lease of the run that holds the
	// host lock.
	FireGuard, EndLease func(token string)
	// Failed says what a step's error names (remote.StepError's Step and
	// NothingChanged); ok is false for an error that is no step's failure.
	Failed func(err error) (step string, nothingChanged, ok bool)
	// State is the host now.
	State func() Host
}

// Run takes the host of d through the steps of c, checking every answer
// against c's, then the host after against c.End. It returns the runs
// whose guard may still be armed on the host.
func Run(t testing.TB, d Driver, c Case) (armed []string) {
	t.Helper()
	maybe := map[string]bool{}
	for i, st := range c.Steps {
		what := string(st.Do) + " " + st.Token
		if i := strings.Index(what, " 0"); i > 0 {
			what = what[:i] + " run " + what[i+1:i+3]
		}
		ctx := t.Context()
		var err error
		var outcome, log string
		switch st.Do {
		case Facts:
			var f live.Facts
			f, err = d.Facts(ctx)
			if err == nil && st.Read != nil {
				if diff := cmp.Diff(*st.Read, ReadOf(f)); diff != "" {
					t.Errorf("step %d, %s: read (-want +got):\n%s", i+1, what, diff)
				}
			}
		case Apply:
			err = d.Apply(ctx, st)
			maybe[st.Token] = err == nil
		case Confirm:
			if d.ConfirmBy == nil {
				outcome, log, err = d.Confirm(ctx, st)
			} else {
				var by string
				outcome, log, by, err = d.ConfirmBy(ctx, st)
				if by != st.By {
					t.Errorf("step %d, %s: decided by %q, want %q", i+1, what, by, st.By)
				}
			}
			if outcome == "failed" && !strings.Contains(log, st.Log) {
				t.Errorf("step %d, %s: failed, and the log does not say %q: %q", i+1, what, st.Log, log)
			}
			maybe[st.Token] = maybe[st.Token] && (outcome == "pending" || outcome == "superseded")
		case Persist:
			err = d.Persist(ctx, st)
		case Settle:
			outcome, err = d.Settle(ctx, st)
			maybe[st.Token] = false
		case GuardFires:
			d.FireGuard(st.Token)
			maybe[st.Token] = false
		case LeaseEnds:
			d.EndLease(st.Token)
		default:
			t.Fatalf("step %d: %q?", i+1, st.Do)
		}
		if outcome != st.Outcome {
			t.Errorf("step %d, %s: outcome %q, want %q", i+1, what, outcome, st.Outcome)
		}
		if err == nil {
			if st.Fails != "" {
				t.Fatalf("step %d, %s: succeeded, want a failure of %q", i+1, what, st.Fails)
			}
			continue
		}
		step, nothing, ok := d.Failed(err)
		switch {
		case st.Fails == "":
			t.Fatalf("step %d, %s: %v", i+1, what, err)
		case !ok:
			t.Fatalf("step %d, %s: %v, want a failure of %q", i+1, what, err, st.Fails)
		case step != st.Fails || nothing != st.NothingChanged:
			t.Errorf("step %d, %s: failed %q (nothing changed: %v): %v; want %q (%v)", i+1, what, step, nothing, err, st.Fails, st.NothingChanged)
		}
	}
	if diff := cmp.Diff(c.End, d.State()); diff != "" {
		t.Errorf("the host after (-want +got):\n%s", diff)
	}
	for token, a := range maybe {
		if a {
			armed = append(armed, token)
		}
	}
	return armed
}

// ReadOf is what the cases compare of the facts f: the tables without
// iptables-save's comments.
func ReadOf(f live.Facts) Read {
	r := Read{
		V4: uncommented(f.V4), V6: uncommented(f.V6), Rules4: f.Persisted4, Rules6: f.Persisted6,
		Persistent: f.Persistent,
	}
	if f.Applied != "" {
		r.Applied = f.Applied + "\n"
	}
	if f.Lock != nil {
		r.Lock = f.Lock.Token
	}
	for _, g := range f.Guards {
		r.Guards = append(r.Guards, g.Token+" "+g.Status)
	}
	return r
}

func uncommented(save string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(save, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
