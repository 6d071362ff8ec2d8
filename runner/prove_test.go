package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/transport"
)

// knockingFleet is the fake fleet with a Prover, as SSHFleet is: a knock
// on a host gets in unless the host is down, its tunnel is, or its new
// rules refuse new connections (refuse) while they are loaded.
type knockingFleet struct {
	*fakeFleet
	mu     sync.Mutex
	knocks map[string]int
	// refuse says, of a host, whether its rules refuse new SSH
	// connections now, the established ones going on.
	refuse func(h *fakeHost) bool
}

var _ Prover = (*knockingFleet)(nil)

func newKnockingFleet(f *fakeFleet) *knockingFleet {
	return &knockingFleet{fakeFleet: f, knocks: map[string]int{}, refuse: func(*fakeHost) bool { return false }}
}

func (f *knockingFleet) Prove(ctx context.Context, ih *inventory.Host) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.knocks[ih.Name]++
	f.mu.Unlock()
	h := f.host(ih.Name)
	switch {
	case ih.Name != f.tunnel && f.host(f.tunnel).down():
		return fmt.Errorf("host %s: knock: %w", ih.Name, transport.ErrTunnelDown)
	case h.down() || f.refuse(h):
		return fmt.Errorf("host %s: knock: i/o timeout", ih.Name)
	}
	f.record("knock " + ih.Name)
	return nil
}

// With a Prover, a changed host is confirmed over the connection its apply
// ran on, after a knock and never before it: one SSH connection per host.
// The tunnel's new rules end the connection the run holds to it: its
// confirm falls back to a fresh connection.
func TestPushConfirmsAfterAKnock(t *testing.T) {
	t.Parallel()
	plan, fake := newTestPlan(t)
	fleet := newKnockingFleet(fake)
	res := runAll(t, plan, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, nil))
	events := fake.snapshotEvents()
	for name, h := range fake.hosts {
		checkEnforced(t, plan, h)
		s := h.state()
		want := []string{"open"}
		if name == fake.tunnel {
			// Read early while the others are at work, read again in
			// its turn.
			want = []string{"open", "open", "fresh"}
		}
		if !slices.Equal(s.Opened, want) {
			t.Errorf("%s: connections %v, want %v", name, s.Opened, want)
		}
		if n := fleet.knocks[name]; n != 1 {
			t.Errorf("%s: %d knocks, want 1", name, n)
		}
		// The knock comes after the apply: the proof is of the new rules.
		if a, k := slices.Index(events, "apply "+name), slices.Index(events, "knock "+name); a < 0 || k < a {
			t.Errorf("%s: knock at %d, apply at %d in %v: want the knock after", name, k, a, events)
		}
		if i := slices.Index(s.Ran, "confirm"); i < 0 || s.Ran[i-1] != "apply" {
			t.Errorf("%s: steps %v, want the confirm right after the apply", name, s.Ran)
		}
	}
}

// New rules that refuse new SSH connections but let the established one go
// on are never confirmed over it: the knocks fail until the guard restores
// the old rules, and the host is rolled back, nothing persisted.
func TestPushKnockRefusedRollsBack(t *testing.T) {
	t.Parallel()
	plan, fake := newTestPlan(t)
	fleet := newKnockingFleet(fake)
	fleet.refuse = func(h *fakeHost) bool {
		s := h.state()
		return h.name == "app-1" && s.Restores > 0 && s.Rollbacks == 0
	}
	res := runAll(t, plan, fleet, RunOptions{RollbackAfter: cutRollbackAfter})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"app-1": RolledBack}))
	s := fake.host("app-1").state()
	if s.Rollbacks != 1 {
		t.Errorf("app-1: %d rollbacks, want 1", s.Rollbacks)
	}
	for _, f := range []string{fileRulesV4, fileRulesV6, fileApplied} {
		if _, ok := s.Files[f]; ok {
			t.Errorf("app-1: %s written for a policy that refused new connections", f)
		}
	}
	if fleet.knocks["app-1"] < 2 {
		t.Errorf("app-1: %d knocks, want it tried again until the guard fired", fleet.knocks["app-1"])
	}
}
