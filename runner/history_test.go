package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/remote"
)

// sentFleet is a fleet whose hosts record the history line each confirm
// and persist carries, by host.
type sentFleet struct {
	Fleet
	mu   sync.Mutex
	sent map[string][]remote.Persist
	// kept are the lines each host's applies carried, for a settle (the
	// History and Done of remote.Apply), when not nil.
	kept map[string][]remote.Persist
	// histories are what each host's history holds; a host without one
	// fails its read.
	histories map[string]string
}

func (f *sentFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	c, err := f.Fleet.Open(ctx, h)
	if err != nil {
		return nil, err
	}
	return &sentConn{Host: c, f: f, name: h.Name}, nil
}

func (f *sentFleet) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	c, err := f.Fleet.OpenFresh(ctx, h)
	if err != nil {
		return nil, err
	}
	return &sentConn{Host: c, f: f, name: h.Name}, nil
}

type sentConn struct {
	Host
	f    *sentFleet
	name string
}

func (c *sentConn) record(p remote.Persist) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.sent[c.name] = append(c.f.sent[c.name], p)
}

func (c *sentConn) Apply(ctx context.Context, a remote.Apply) error {
	c.f.mu.Lock()
	if c.f.kept != nil {
		c.f.kept[c.name] = append(c.f.kept[c.name], remote.Persist{History: a.History, Done: a.Done})
	}
	c.f.mu.Unlock()
	return c.Host.Apply(ctx, a)
}

func (c *sentConn) Confirm(ctx context.Context, cf remote.Confirm) (remote.Confirmation, error) {
	c.record(cf.Persist)
	return c.Host.Confirm(ctx, cf)
}

func (c *sentConn) Persist(ctx context.Context, p remote.Persist) error {
	c.record(p)
	return c.Host.Persist(ctx, p)
}

func (c *sentConn) History(context.Context) ([]byte, error) {
	h, ok := c.f.histories[c.name]
	if !ok {
		return nil, &remote.StepError{Step: "read history", Err: errors.New("cat: permission denied")}
	}
	return []byte(h), nil
}

// Each changed host's confirm carries the line of its change: the run's
// who, version and fleet, the host, its policy and counts, and the outcome
// once confirmed (applied, drift repaired); unchanged hosts and a dry run
// send none. The apply carries the same line, which the host keeps for a
// run that settles this one (see remote.Settle).
func TestPushSendsHistory(t *testing.T) {
	plan, fake := newTestPlan(t)
	fleet := &sentFleet{Fleet: fake, sent: map[string][]remote.Persist{}, kept: map[string][]remote.Persist{}}
	run := history.Run{Who: "op@laptop", Version: "v1.2.3", Inventory: plan.Inventory.Digest(), Joined: []string{"app-2"}}
	checkStatuses(t, runAll(t, plan, fleet, RunOptions{History: run}), statuses(plan, Applied, nil))
	for _, h := range plan.Inventory.Hosts {
		sent := fleet.sent[h.Name]
		if len(sent) != 1 {
			t.Fatalf("%s: %d confirms, want 1", h.Name, len(sent))
		}
		pol, _ := plan.Policy(h.Name)
		want := run.Entry(h.Name, change.Digest(pol), 0, 0)
		got := entryOf(t, sent[0])
		want.Added, want.Removed = got.Added, got.Removed // counted by package change
		if diff := cmp.Diff(want, got); diff != "" || sent[0].Done != history.Applied || got.Added == 0 {
			t.Errorf("%s: the line sent (-want +got), outcome %q:\n%s", h.Name, sent[0].Done, diff)
		}
		if k := fleet.kept[h.Name]; len(k) != 1 || string(k[0].History) != string(sent[0].History) || k[0].Done != sent[0].Done {
			t.Errorf("%s: the applies carried %+v, want the confirm's line", h.Name, k)
		}
	}

	fleet.sent = map[string][]remote.Persist{}
	fake.host("app-2").set(func(h *fakeHost) {
		h.live4 = strings.Replace(h.live4, "COMMIT\n", "-A INPUT -s 198.51.100.7/32 -j ACCEPT\nCOMMIT\n", 1)
	})
	runAll(t, plan, fleet, RunOptions{DryRun: true})
	if len(fleet.sent) != 0 {
		t.Errorf("a dry run sent %v", fleet.sent)
	}
	checkStatuses(t, runAll(t, plan, fleet, RunOptions{History: run}), statuses(plan, Unchanged, map[string]Status{"app-2": DriftRepaired}))
	if len(fleet.sent) != 1 || len(fleet.sent["app-2"]) != 1 || fleet.sent["app-2"][0].Done != history.DriftRepaired {
		t.Errorf("sent %v; want app-2's drift repaired alone", fleet.sent)
	}
	if e := entryOf(t, fleet.sent["app-2"][0]); e.Removed != 1 || e.Added != 0 || e.Who != "op@laptop" {
		t.Errorf("app-2's line: %+v; want 1 rule removed, by op@laptop", e)
	}
	// Without a who, the run says who runs it.
	fleet.sent = map[string][]remote.Persist{}
	fake.host("app-2").set(func(h *fakeHost) {
		h.live4 = strings.Replace(h.live4, "COMMIT\n", "-A INPUT -s 198.51.100.7/32 -j ACCEPT\nCOMMIT\n", 1)
	})
	runAll(t, plan, fleet, RunOptions{})
	if e := entryOf(t, fleet.sent["app-2"][0]); e.Who != User() || !strings.Contains(e.Who, "@") {
		t.Errorf("who %q, want %q", e.Who, User())
	}
}

// entryOf reads the line p carries, as the host completes it, without
// the time and outcome the host adds.
func entryOf(t *testing.T, p remote.Persist) history.Entry {
	t.Helper()
	line := `{"time":"2026-12-06T17:00:00Z","outcome":"` + p.Done + `",` + string(p.History)
	e, bad := history.Parse("", []byte(line))
	if bad != 0 || len(e) != 1 {
		t.Fatalf("the line sent does not parse: %s", line)
	}
	e[0].Time, e[0].Outcome = time.Time{}, ""
	return e[0]
}

// ReadHistory reads every host once, parses its lines, and reports the
// hosts it could not read without stopping at them.
func TestReadHistory(t *testing.T) {
	plan, fake := newTestPlan(t)
	line := func(min, host string) string {
		return `{"time":"2026-12-06T17:` + min + `:00Z","outcome":"applied","host":"` + host + `","added":1}` + "\n"
	}
	fleet := &sentFleet{Fleet: fake, histories: map[string]string{
		"app-1":    line("05", "app-1") + line("01", "app-1"),
		"tunnel-1": line("03", "tunnel-1") + "{cut short\n",
		"db-1":     "",
	}}
	fake.host("app-2").set(func(h *fakeHost) { h.unreachable = true })
	hosts := plan.Inventory.Hosts
	res := ReadHistory(t.Context(), plan.Inventory, hosts, fleet, 2, nil)
	got := map[string]string{}
	for i, r := range res {
		if r.Host != hosts[i].Name {
			t.Errorf("result %d is %s, want %s", i, r.Host, hosts[i].Name)
		}
		got[r.Host] = fmt.Sprintf("%s %d entries %d bad", r.Status, len(r.Entries), r.Bad)
		if r.Err != nil {
			got[r.Host] += ": " + r.Err.Error()
		}
	}
	// lb-1 has no history the fake can read: its read fails.
	want := map[string]string{
		"tunnel-1": "unchanged 1 entries 1 bad",
		"lb-1":     "failed 0 entries 0 bad: host lb-1: read history: cat: permission denied",
		"app-1":    "unchanged 2 entries 0 bad",
		"db-1":     "unchanged 0 entries 0 bad",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %s, want %s", name, got[name], w)
		}
	}
	if !strings.HasPrefix(got["app-2"], "unreachable 0 entries 0 bad: host app-2: ") {
		t.Errorf("app-2: %s, want unreachable", got["app-2"])
	}
}
