package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// answer is what one confirm over a fresh connection gets: the host's
// confirmation, or the error of a connection that did not reach it.
type answer struct {
	conf remote.Confirmation
	err  error
}

// answers is a host whose confirms get the answers in turn, the last one
// again once they run out: the seam of this file's tests is the confirm
// step alone, what the host protocol answers (remote's tests prove the
// scripts answer so).
type answers struct {
	mu   sync.Mutex
	list []answer
	n    int
}

func (a *answers) next() answer {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := min(a.n, len(a.list)-1)
	a.n++
	return a.list[i]
}

func (a *answers) Open(context.Context, *inventory.Host) (Host, error) {
	return nil, errors.New("not a step of the confirm")
}

func (a *answers) OpenFresh(_ context.Context, h *inventory.Host) (Host, error) {
	ans := a.next()
	if ans.conf.Outcome == "" {
		return nil, ans.err
	}
	return answered{ans}, nil
}

func (a *answers) Tunnel(context.Context, string) string { return "" }

// answered is a connection that answers the confirm with ans.
type answered struct{ ans answer }

func (c answered) Confirm(context.Context, remote.Confirm) (remote.Confirmation, error) {
	return c.ans.conf, c.ans.err
}
func (answered) Facts(context.Context) (remote.Facts, error) {
	return remote.Facts{}, errors.ErrUnsupported
}
func (answered) Apply(context.Context, remote.Apply) error { return errors.ErrUnsupported }
func (answered) Persist(context.Context, remote.Persist) error {
	return errors.ErrUnsupported
}
func (answered) Settle(context.Context, string, bool) (remote.Outcome, error) {
	return "", errors.ErrUnsupported
}
func (answered) Probe(context.Context, []remote.Probe, remote.ProbeOptions) ([]remote.ProbeResult, time.Duration, error) {
	return nil, 0, errors.ErrUnsupported
}
func (answered) Close() error { return nil }

var (
	_ Fleet = (*answers)(nil)
	_ Host  = answered{}
)

// The errors a confirm meets: the new policy cuts the host's SSH (the
// channel through a bastion that answers is refused or times out), and
// the link to the bastion is lost (the tunnel connection ended).
var (
	errCutSSH   = fmt.Errorf("host mysql-1: connect to 198.18.0.31:22 through tunnel tunnel-1: %w", context.DeadlineExceeded)
	errLinkDown = &LinkError{Bastion: "tunnel-1", Err: fmt.Errorf("tunnel tunnel-1: %w", transport.ErrTunnelDown)}
)

// Every rollback says who decided it, and a host left to its guard why it
// was: the policy (fresh connections refused by the host), the link to
// the bastion (the host never asked), this run late (paused), or another
// run that took this one for gone (the host names it).
func TestConfirmCauses(t *testing.T) {
	t.Parallel()
	fire := time.Date(2026, 12, 6, 12, 39, 45, 0, time.Local)
	guardAt := func(late time.Duration) remote.GuardTimes {
		return remote.GuardTimes{FireAt: fire, Now: fire.Add(late)}
	}
	rolledBack := remote.Confirmation{Outcome: remote.RolledBack, Guard: guardAt(2 * time.Second)}
	pending := remote.Confirmation{Outcome: remote.Pending, Guard: guardAt(-20 * time.Millisecond)}
	const paused = "this run paused past its guard's time: the guard restored the old rules"
	stalled := map[string]time.Duration{paused: 25 * time.Second}
	for _, tc := range []struct {
		name    string
		answers []answer
		status  Status
		want    []string // in the error
		not     []string // never in it
	}{
		{"the new policy cut SSH: the guard restored the old rules",
			[]answer{{err: errCutSSH}, {err: errCutSSH}, {conf: rolledBack}},
			RolledBack, []string{"the new policy cut SSH", "deadline exceeded", "by itself at 12:39:45 (the host's clock)", "reachable again"}, []string{"superseded", "bastion"}},
		{"the link to the bastion lost: the guard restored the old rules, not because of the policy",
			[]answer{{err: errLinkDown}, {err: errLinkDown}, {conf: rolledBack}},
			RolledBack, []string{"the connection to bastion tunnel-1 was lost", "tunnel connection is down", "no confirm reached the host", "at 12:39:45 (the host's clock)", "not the policy's doing"}, []string{"cut SSH"}},
		{"the link to the bastion lost, and not back: the host was not asked",
			[]answer{{conf: pending}, {err: errLinkDown}},
			Unknown, []string{"the connection to bastion tunnel-1 was lost", "the host itself was not asked", "restores the old rules by itself at 12:39:45 (the host's clock)"}, []string{"cut SSH"}},
		{"the new policy cut SSH, and the host still silent",
			[]answer{{conf: pending}, {err: errCutSSH}},
			Unknown, []string{"the new policy cut SSH", "still unreachable", "at 12:39:45 (the host's clock)"}, []string{"bastion"}},
		{paused,
			[]answer{{conf: remote.Confirmation{Outcome: remote.RolledBack, Guard: guardAt(19 * time.Second)}}},
			RolledBack, []string{"only after its guard fired, at 12:39:45 (the host's clock), 19s late", "paused", "did not cut SSH"}, []string{"the new policy cut SSH", "superseded"}},
		{"the host's answers held up by the new policy until the guard fired: the guard restored the old rules",
			[]answer{{conf: remote.Confirmation{Outcome: remote.RolledBack, Guard: guardAt(20 * time.Millisecond)}}},
			RolledBack, []string{"the new policy cut SSH", "held up until the guard had restored the previous rules at 12:39:45 (the host's clock)"}, []string{"paused", "superseded"}},
		{"another run took this one for gone and rolled it back",
			[]answer{{conf: remote.Confirmation{Outcome: remote.RolledBack, By: "op@laptop2 pid 7", Guard: guardAt(-time.Minute)}}},
			RolledBack, []string{"superseded by run op@laptop2 pid 7", "took this one for gone", "rolled its apply back"}, []string{"cut SSH", "guard restored"}},
		{"another run took this one for gone and applied since",
			[]answer{{conf: remote.Confirmation{Outcome: remote.Superseded, By: "op@laptop2 pid 7"}}},
			Failed, []string{"superseded by run op@laptop2 pid 7", "has applied to the host since"}, []string{"cut SSH"}},
		{"confirmed, the persist's answer lost with the connection: confirmed again, applied",
			[]answer{{conf: remote.Confirmation{Outcome: remote.Confirmed}, err: fmt.Errorf("confirm: %w", transport.ErrConnectionLost)}, {conf: remote.Confirmation{Outcome: remote.Confirmed}}},
			Applied, nil, nil},
		{"another run kept this one's apply: applied",
			[]answer{{conf: remote.Confirmation{Outcome: remote.Confirmed, By: "op@laptop2 pid 7"}}},
			Applied, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv := &inventory.Inventory{SSH: inventory.SSH{Timeout: 50 * time.Millisecond}}
			h := &inventory.Host{Name: "mysql-1"}
			p := &pusher{inv: inv, host: h, fleet: &answers{list: tc.answers},
				opts: RunOptions{Poll: time.Millisecond}, log: slog.New(slog.DiscardHandler)}
			// The run's own guess is ten minutes off: the host's times win.
			deadline := guess(time.Now(), 10*time.Minute)
			deadline.told(remote.GuardTimes{FireAt: fire, Now: fire.Add(-20 * time.Millisecond)})
			// The run that was paused stood still between the apply's
			// answer and its confirm; the others confirm at once.
			deadline.answered = deadline.answered.Add(-stalled[tc.name])
			err := p.confirm(t.Context(), nil, "0123456789abcdef", deadline, remote.Persist{})
			res := HostResult{Host: h.Name, Status: Applied}
			if err != nil {
				res.fail(err)
			}
			if res.Status != tc.status {
				t.Fatalf("status %s (%v), want %s", res.Status, err, tc.status)
			}
			if err == nil {
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant %q in it", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q\nsays %q", err, n)
				}
			}
		})
	}
}

// Until the host tells the guard's time, the report says it is a guess.
func TestGuardClock(t *testing.T) {
	g := guess(time.Now(), time.Minute)
	if s := g.String(); !strings.HasPrefix(s, "at about ") {
		t.Errorf("a guess: %q", s)
	}
	// An apply whose answer was lost after 40s: the guard was armed in
	// between, the report says so.
	lost := guess(time.Now().Add(-40*time.Second), time.Minute)
	if s := lost.String(); !strings.HasPrefix(s, "between ") || !strings.Contains(s, "the apply's answer, which gives the host's, was lost") {
		t.Errorf("a guess after an answer lost: %q", s)
	}
	fire := time.Unix(1700000060, 0)
	g.told(remote.GuardTimes{FireAt: fire, Now: fire.Add(-30 * time.Second)})
	if want := "at " + fire.Local().Format("15:04:05") + " (the host's clock)"; g.String() != want {
		t.Errorf("told: %q, want %q", g.String(), want)
	}
	if left := time.Until(g.at); left < 25*time.Second || left > 30*time.Second {
		t.Errorf("the guard fires in %s by this clock, want 30s", left)
	}
	g.told(remote.GuardTimes{}) // a host that could not tell changes nothing
	if g.fireAt != fire {
		t.Errorf("an unknown time replaced the host's")
	}
}
