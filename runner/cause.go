package runner

import (
	"errors"
	"fmt"
	"time"

	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// The causes of a rollback, and of a host left to its guard, as a run
// reports them. Each says who decided, from what the run saw and what the
// host records:
//
//   - the guard, because the new policy cut SSH: fresh connections to the
//     host failed, through a bastion that still answered, until the guard
//     fired (the missing confirm is the proof);
//   - the guard, because the link to the bastion was lost: the host itself
//     was never asked, and its rules were not the cause;
//   - the guard, because this run came too late to confirm (it was paused,
//     or stalled), though nothing stopped it from reaching the host;
//   - another run of fwpush, which took this one for gone (its confirm was
//     long overdue) and rolled back or kept its apply, or applied since:
//     the host records who (remote.Confirmation.By).

// LinkError is a host that could not be reached because of the way to it:
// the connection to its site's bastion was lost, and no bastion of the
// site could carry it again. The host itself was not asked.
type LinkError struct {
	Site    string // "" for the one site of an inventory without [sites]
	Bastion string // the bastion whose connection was lost
	Err     error
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("the connection to bastion %s was lost: %v", e.Bastion, e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

// linkLost reports whether err is a failure of the way to a host rather
// than of the host: the tunnel connection ended under it.
func linkLost(err error) bool {
	var le *LinkError
	return errors.As(err, &le) || errors.Is(err, transport.ErrTunnelDown)
}

// guardClock is when a host's guard fires: by the host's clock, as the
// host told it (fireAt; the report gives it), and by this machine's (at,
// to wait on), made of what the host said was left. Until the host tells,
// it is this machine's guess: the guard was armed after the apply began
// (from), and before its answer came, or was given up for lost (at).
type guardClock struct {
	from, at time.Time
	fireAt   time.Time // zero until the host tells
	// answered is when the apply's answer came, or was given up for
	// lost: a run that confirms late after it was not paused.
	answered time.Time
}

// guess is the deadline of a guard of delay rollback armed between start
// and now.
func guess(start time.Time, rollback time.Duration) *guardClock {
	now := time.Now()
	return &guardClock{from: start.Add(rollback), at: now.Add(rollback), answered: now}
}

// told sets the clock from the host's times, if it gave them.
func (g *guardClock) told(t remote.GuardTimes) {
	if t.Known() {
		g.at, g.fireAt = time.Now().Add(t.Until()), t.FireAt
	}
}

// String is the guard's time as the report gives it, "at 12:39:45 (the
// host's clock)": the host's, or this machine's guess, said so.
func (g *guardClock) String() string {
	switch {
	case !g.fireAt.IsZero():
		return "at " + g.fireAt.Local().Format("15:04:05") + " (the host's clock)"
	case g.at.Sub(g.from) < time.Second:
		return "at about " + g.at.Format("15:04:05")
	}
	return fmt.Sprintf("between %s and %s (this machine's clock: the apply's answer, which gives the host's, was lost)",
		g.from.Truncate(time.Second).Format("15:04:05"), g.at.Format("15:04:05"))
}

// tries is what a run saw of a host while it tried to confirm: the last
// failure to reach it, and whether that was the link to its bastion.
type tries struct {
	failed int   // attempts that did not reach the host
	last   error // the last of them
	// pending counts answers that the apply had not finished.
	pending int
	// first is when the first attempt began.
	first time.Time
}

// note records the answer of an attempt begun at began.
func (t *tries) note(conf remote.Confirmation, err error, began time.Time) {
	if t.first.IsZero() {
		t.first = began
	}
	switch {
	case err != nil && conf.Outcome == "":
		t.failed++
		t.last = err
	case conf.Outcome == remote.Pending:
		t.pending++
	}
}

// linkDown reports whether the run's last failure to reach the host was
// the link to its bastion.
func (t *tries) linkDown() bool { return t.last != nil && linkLost(t.last) }

// linkCause says that the link to the bastion was lost, as err tells it.
func linkCause(err error) string {
	var le *LinkError
	if errors.As(err, &le) {
		return le.Error()
	}
	return fmt.Sprintf("the connection to the bastion was lost (%v)", err)
}

// rolledBack is the error of a host whose old rules are back, saying who
// decided it.
func rolledBack(conf remote.Confirmation, t *tries, g *guardClock) error {
	var err error
	switch {
	case conf.By != "":
		err = fmt.Errorf("superseded by run %s: that run of fwpush took this one for gone (its confirm was overdue) and rolled its apply back; the host has its previous rules", conf.By)
	case t.failed > 0 && t.linkDown():
		err = fmt.Errorf("%s, so no confirm reached the host, whose guard restored its previous rules by itself %s; the host is reachable again: not the policy's doing", linkCause(t.last), g)
	case t.failed > 0:
		err = fmt.Errorf("the new policy cut SSH (%v): the host restored its previous rules by itself %s, before fwpush could confirm, and is reachable again", t.last, g)
	case t.pending > 0:
		err = fmt.Errorf("the apply had not finished when its guard fired, %s: the guard restored the previous rules", g)
	case conf.Guard.Known() && !g.answered.IsZero() && t.first.Sub(g.answered) < conf.Guard.Now.Sub(conf.Guard.FireAt):
		// The run did not stall between the apply's answer and its
		// confirm: it was waiting on the host when the guard fired, its
		// answers held up until the old rules were back.
		err = fmt.Errorf("the new policy cut SSH: the host's answers to fwpush were held up until the guard had restored the previous rules %s; the host is reachable again", g)
	default:
		late := ""
		if conf.Guard.Known() {
			late = fmt.Sprintf(", %s late", conf.Guard.Now.Sub(conf.Guard.FireAt).Round(time.Second))
		}
		err = fmt.Errorf("this run asked to confirm only after its guard fired, %s%s: fwpush was paused or stalled, and the guard restored the previous rules; the policy did not cut SSH", g, late)
	}
	return &stageError{RolledBack, "confirm", err}
}

// superseded is the error of a run whose apply the host no longer knows:
// another run settled it and applied since.
func superseded(conf remote.Confirmation) error {
	if conf.By != "" {
		return fail("confirm", fmt.Errorf("superseded by run %s: another run of fwpush took this one for gone and has applied to the host since: what the host has is that run's doing", conf.By))
	}
	return fail("confirm", errors.New("the host no longer knows this run's apply: another run of fwpush took it over"))
}

// silent is the error of a host not heard from since its guard's time: the
// guard decides, at its time.
func silent(t *tries, g *guardClock) error {
	var err error
	switch {
	case t.linkDown():
		err = fmt.Errorf("%s: the host itself was not asked", linkCause(t.last))
	case t.last != nil:
		err = fmt.Errorf("the new policy cut SSH (%v), and the host is still unreachable after its rollback deadline", t.last)
	default:
		err = errors.New("the apply had not finished")
	}
	return unknown(g, err)
}

// unknown is a host fwpush could not hear from after its apply: what it
// has is the guard's to decide.
func unknown(g *guardClock, err error) error {
	return &stageError{Unknown, "confirm", fmt.Errorf("%w; its guard restores the old rules by itself %s unless it was confirmed", err, g)}
}
