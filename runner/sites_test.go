package runner

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// Tunnel implements Fleet: a fake fleet is carried by its one tunnel.
func (f *fakeFleet) Tunnel(context.Context, string) string { return f.tunnel }

// Tunnel implements Fleet: probes do not care.
func (p *prober) Tunnel(context.Context, string) string { return "" }

var (
	_ Fleet = (*fakeSites)(nil)
	_ Host  = (*siteConn)(nil)
)

// fakeSites is a fleet of several sites, as SSHFleet reaches them: one
// fakeFleet per site, carried by the bastion via names (the site's first
// by default), and one log of events across the sites.
type fakeSites struct {
	sites map[string]*fakeFleet

	mu     sync.Mutex
	events []string // "apply HOST", "confirmed HOST"

	inFlight, maxInFlight atomic.Int32 // connections open at once
}

func newFakeSites(t *testing.T, inv *inventory.Inventory, via map[string]string) *fakeSites {
	t.Helper()
	f := &fakeSites{sites: map[string]*fakeFleet{}}
	for _, s := range inv.Sites {
		sub := *inv
		sub.Hosts = inv.HostsIn(s.Name)
		sub.SSH.Tunnel = s.Tunnels[0]
		if v := via[s.Name]; v != "" {
			sub.SSH.Tunnel = v
		}
		f.sites[s.Name] = newFakeFleet(t, &sub)
	}
	return f
}

func (f *fakeSites) host(name string) *fakeHost {
	for _, s := range f.sites {
		if h, ok := s.hosts[name]; ok {
			return h
		}
	}
	panic("no fake host " + name)
}

func (f *fakeSites) record(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeSites) eventIndex(e string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Index(f.events, e)
}

func (f *fakeSites) wrap(name string, h Host, err error) (Host, error) {
	if err != nil {
		return nil, err
	}
	n := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return &siteConn{Host: h, f: f, name: name}, nil
}

// Open implements Fleet.
func (f *fakeSites) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	c, err := f.sites[h.Site].Open(ctx, h)
	return f.wrap(h.Name, c, err)
}

// OpenFresh implements Fleet.
func (f *fakeSites) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	c, err := f.sites[h.Site].OpenFresh(ctx, h)
	return f.wrap(h.Name, c, err)
}

// Tunnel implements Fleet.
func (f *fakeSites) Tunnel(_ context.Context, site string) string { return f.sites[site].tunnel }

// siteConn is a connection of fakeSites: it records applies and confirms.
type siteConn struct {
	Host
	f      *fakeSites
	name   string
	closed atomic.Bool
}

func (c *siteConn) Apply(ctx context.Context, a remote.Apply) error {
	c.f.record("apply " + c.name)
	return c.Host.Apply(ctx, a)
}

func (c *siteConn) Confirm(ctx context.Context, x remote.Confirm) (remote.Confirmation, error) {
	conf, err := c.Host.Confirm(ctx, x)
	if conf.Outcome == remote.Confirmed {
		c.f.record("confirmed " + c.name)
	}
	return conf, err
}

func (c *siteConn) Close() error {
	if !c.closed.Swap(true) {
		c.f.inFlight.Add(-1)
	}
	return c.Host.Close()
}

func sitesPlan(t *testing.T) *roles.Plan {
	t.Helper()
	inv, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// hostsBastionsFirst is every host of the plan, bastions first, so that a
// test shows Run reorders them.
func hostsBastionsFirst(plan *roles.Plan) []*inventory.Host {
	hosts := slices.Clone(plan.Inventory.Hosts)
	slices.SortStableFunc(hosts, func(a, b *inventory.Host) int {
		return boolRank(!plan.Inventory.IsBastion(a)) - boolRank(!plan.Inventory.IsBastion(b))
	})
	return hosts
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// In each site the bastions go last, one at a time, the one carrying the
// site last of all and only once the others are confirmed; each site's
// carrying bastion is reconnected to, and no other.
func TestPushSitesBastionsLast(t *testing.T) {
	t.Parallel()
	plan := sitesPlan(t)
	fleet := newFakeSites(t, plan.Inventory, nil)
	res := runHosts(t, plan, hostsBastionsFirst(plan), fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, nil))

	before := func(a, b string) {
		t.Helper()
		ia, ib := fleet.eventIndex(a), fleet.eventIndex(b)
		if ia < 0 || ib < 0 || ia > ib {
			t.Errorf("%q (event %d) does not come before %q (event %d): %v", a, ia, b, ib, fleet.events)
		}
	}
	for _, h := range []string{"app-1", "app-2", "www-1"} {
		before("confirmed "+h, "apply bastion-e2")
	}
	before("confirmed bastion-e2", "apply bastion-e1")
	for _, h := range []string{"db-1", "db-2"} {
		before("confirmed "+h, "apply bastion-w1")
	}
	for site, want := range map[string]int{"east": 1, "west": 1} {
		if n := fleet.sites[site].reconnectCount(); n != want {
			t.Errorf("site %s: %d reconnects, want %d (its carrying bastion's confirm)", site, n, want)
		}
	}
	// The standby was confirmed through the bastion carrying the site,
	// not over a connection of its own (read early while the others were
	// at work, then again in its turn).
	if got := fleet.host("bastion-e2").state().Opened; !slices.Equal(got, []string{"open", "open", "fresh"}) {
		t.Errorf("bastion-e2 was opened %v, want open (early), open, then fresh", got)
	}
}

// With the first bastion down, the run goes through the second: every
// other host is applied, the second is changed last, and the first is
// reported unreachable on its own.
func TestPushSitesThroughTheStandby(t *testing.T) {
	t.Parallel()
	plan := sitesPlan(t)
	fleet := newFakeSites(t, plan.Inventory, map[string]string{"east": "bastion-e2"})
	fleet.host("bastion-e1").set(func(h *fakeHost) { h.unreachable = true })
	res := runHosts(t, plan, hostsBastionsFirst(plan), fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, Applied, map[string]Status{"bastion-e1": Unreachable}))
	east := []string{"apply app-1", "apply app-2", "apply www-1", "apply bastion-e1"}
	if i := fleet.eventIndex("apply bastion-e2"); i < 0 || slices.ContainsFunc(fleet.events[i+1:], func(e string) bool {
		return slices.Contains(east, e)
	}) {
		t.Errorf("bastion-e2 is not the last of east applied: %v", fleet.events)
	}
	if n := fleet.sites["east"].reconnectCount(); n != 1 {
		t.Errorf("east: %d reconnects, want 1 (bastion-e2's confirm)", n)
	}
}

// Sites are worked on at once, within one budget: a slow site does not
// hold a fast one's bastions back, and no more than Parallel hosts are
// worked on at a time across the sites.
func TestPushSitesInParallel(t *testing.T) {
	t.Parallel()
	plan := sitesPlan(t)
	fleet := newFakeSites(t, plan.Inventory, nil)
	for _, h := range []string{"app-1", "app-2", "www-1"} {
		fleet.host(h).set(func(h *fakeHost) { h.factsDelay = 1500 * time.Millisecond })
	}
	// Three slow hosts hold three of the four places: west's two, then
	// its bastion, take the fourth.
	res := runHosts(t, plan, plan.Inventory.Hosts, fleet, RunOptions{Parallel: 4})
	checkStatuses(t, res, statuses(plan, Applied, nil))
	if a, b := fleet.eventIndex("confirmed bastion-w1"), fleet.eventIndex("apply app-1"); a < 0 || b < 0 || a > b {
		t.Errorf("west's bastion waited for east's slow hosts: %v", fleet.events)
	}
	if got := fleet.maxInFlight.Load(); got > 4 {
		t.Errorf("%d connections at once across the sites, want at most 4", got)
	}
}

// A fleet none of whose bastions answer, as SSHFleet reaches it: every
// site's hosts, its bastions too, are not tried, for one error naming the
// site.
func TestSSHFleetSiteDown(t *testing.T) {
	plan := sitesPlan(t)
	inv := plan.Inventory
	// Every bastion at a port of this machine that refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, h := range inv.Hosts {
		if inv.IsBastion(h) {
			h.PublicIP, h.Port = netip.MustParseAddr("127.0.0.1"), closed
		}
	}
	var mu sync.Mutex
	var reached []Reach
	fleet, err := Open(inv, testOptions(t), OpenOptions{OnReach: func(r Reach) {
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	res := runHosts(t, plan, inv.Hosts, fleet, RunOptions{})
	checkStatuses(t, res, statuses(plan, NotTried, nil))
	for name, r := range res {
		var se *SiteError
		var nt *NotTriedError
		h, _ := inv.Host(name)
		if !errors.As(r.Err, &nt) || !errors.As(r.Err, &se) || se.Site != h.Site {
			t.Errorf("%s: %v: want not tried, for a *SiteError of site %s", name, r.Err, h.Site)
			continue
		}
		if fleet.Err(h.Site) != error(se) {
			t.Errorf("%s: the fleet's error for site %s is %v, not the host's", name, h.Site, fleet.Err(h.Site))
		}
		wantTried := map[string][]string{"east": {"bastion-e1", "bastion-e2"}, "west": {"bastion-w1"}}[h.Site]
		var tried []string
		for _, s := range se.Tried {
			tried = append(tried, s.Bastion)
		}
		if !slices.Equal(tried, wantTried) {
			t.Errorf("%s: the site error tried %v, want %v", name, tried, wantTried)
		}
		// The bastions too: they were tried as the way in, not as hosts.
		if msg := r.Err.Error(); !strings.HasPrefix(msg, "host "+name+": connect: not tried: site "+h.Site+": no bastion answers: ") || !strings.Contains(msg, "127.0.0.1") {
			t.Errorf("%s: %q: want not tried, naming the site", name, msg)
		}
	}
	if len(reached) != 2 {
		t.Fatalf("OnReach called %d times, want once per site: %v", len(reached), reached)
	}
	slices.SortFunc(reached, func(a, b Reach) int { return strings.Compare(a.Site, b.Site) })
	for i, site := range []string{"east", "west"} {
		if r := reached[i]; r.Site != site || r.Via != "" || !strings.HasPrefix(r.String(), "site "+site+": no bastion answers: host bastion-") {
			t.Errorf("reach of %s: %+v, %q", site, r, r.String())
		}
	}
	if got := fleet.Reached(); len(got) != 2 || fleet.Tunnel(context.Background(), "east") != "" {
		t.Errorf("Reached() = %v, Tunnel(east) = %q: want both sites, none carried", got, fleet.Tunnel(context.Background(), "east"))
	}
}

// A fleet contacts a site only when a host of it is needed.
func TestSSHFleetConnectsOnDemand(t *testing.T) {
	plan := sitesPlan(t)
	inv := plan.Inventory
	for _, h := range inv.Hosts {
		if inv.IsBastion(h) {
			h.PublicIP, h.Port = netip.MustParseAddr("127.0.0.1"), 1
		}
	}
	var n atomic.Int32
	fleet, err := Open(inv, testOptions(t), OpenOptions{OnReach: func(Reach) { n.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	db, _ := inv.Host("db-1")
	runHosts(t, plan, []*inventory.Host{db}, fleet, RunOptions{})
	if got := fleet.Reached(); n.Load() != 1 || len(got) != 1 || got[0].Site != "west" {
		t.Errorf("a run of db-1 reached %v (%d calls): want west only", got, n.Load())
	}
}

func TestOpenVia(t *testing.T) {
	inv := sitesPlan(t).Inventory
	for _, tt := range []struct {
		via  []string
		want string
	}{
		{[]string{"bastion-e2", "bastion-w1"}, ""},
		{[]string{"nobody"}, "--via nobody: no such host"},
		{[]string{"app-1"}, "--via app-1: not a bastion: the hosts of site east accept SSH from bastion-e1, bastion-e2 only"},
		{[]string{"bastion-e2", "bastion-e1"}, "--via bastion-e1: --via bastion-e2 already names the bastion of site east"},
	} {
		_, err := Open(inv, testOptions(t), OpenOptions{Via: tt.via})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("--via %v (-want +got):\n%s", tt.via, diff)
		}
	}
}

// testOptions are SSH options with a key of the test's own and an empty
// known_hosts: enough to try a connection.
func testOptions(t *testing.T) transport.Options {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	return transport.Options{Identity: key, KnownHosts: filepath.Join(dir, "known_hosts"), Timeout: 2 * time.Second}
}
