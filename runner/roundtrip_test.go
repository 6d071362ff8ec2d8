package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// roundTripBudgets are what a run of one host costs, in round trips
// counted on the TCP connection(s) to the tunnel (transport.RoundTripConn:
// each switch from writing to reading; TCP's own handshake, one more per
// connection, is not counted), and in SSH handshakes. The tunnel's own
// connection is counted apart: a run makes it once for the whole fleet.
// A host's count is what the run of that host alone waits for on the
// link: opening its channel, its SSH handshake through the tunnel, its
// commands, the knock that proves new connections get in. Closing a
// connection waits for nothing; the peer's answer to it is counted when it
// comes in time, and reported apart.
//
// Measured on the lab (2026-12, x/crypto/ssh v0.59.0, OpenSSH 9.2), per
// step, for app-1 changed: connect to the tunnel 7 (x/crypto/ssh's
// handshake: banners, key exchange, service request, the "none" method,
// the key query, the signature), connect to the host 8 (the channel's
// open, the same 7-round-trip handshake over it; the tunnel's connection,
// which acknowledges every read at once, sends no nudge: see nodelay.go),
// read 3 (open a channel, whose answer sshd holds until its hostkeys-00
// is acknowledged: the host's nudge and that answer, one more; exec and
// the end of stdin, answered by the output: the read sends nothing on
// stdin, its deadline on the command line, so it does not wait for the
// window sshd gives a channel once its command starts), stage+apply 3 (on
// a channel opened during the read: exec, answered by the window; stdin,
// answered by the output; and one more as the confirm's channel, opened
// meanwhile, starts its command between two replies), the knock 1 (a
// channel through the tunnel to the host's sshd, which sends its banner:
// no second SSH handshake), confirm+persist 1 (started during the apply,
// it waits for its stdin, sent once the knock got in). A count varies by
// one with how replies coalesce into reads: the budgets are the higher.
//
// Before issue 23's protocol work: 28 changed (two handshakes), 13
// unchanged; the tunnel 18 and 4. Before the tunnel's connection stopped
// nudging: 17, 12 (or 13), 7 and 3.
var roundTripBudgets = []struct {
	host    string
	changed bool
	// tunnel bounds the tunnel's connection; own the host's part.
	tunnel, own int64
	// handshakes is the host's exact number of SSH handshakes, the
	// tunnel's first not counted when the host is the tunnel.
	handshakes int
}{
	{host: "app-1", changed: true, tunnel: 7, own: 17, handshakes: 1},
	{host: "app-1", changed: false, tunnel: 7, own: 12, handshakes: 1},
	// The tunnel's sessions run on its connection; its knock is a new TCP
	// connection from the controller (whose handshake is not counted).
	{host: "tunnel-1", changed: true, tunnel: 7, own: 7, handshakes: 0},
	{host: "tunnel-1", changed: false, tunnel: 7, own: 2, handshakes: 0},
}

// roundTripsEnv marks the re-executed test binary that runs inside the
// lab's controller namespace.
const roundTripsEnv = "FWPUSH_TEST_ROUNDTRIPS_INVENTORY"

// TestRoundTripBudget holds the round trips and SSH handshakes of a run
// of one host, changed and then unchanged, for a host behind the tunnel
// and for the tunnel itself, against the real lab (sshd, iptables): the
// cost a slow link to the data centre multiplies. It logs them per step.
func TestRoundTripBudget(t *testing.T) {
	if path := os.Getenv(roundTripsEnv); path != "" {
		roundTripScenario(t, path)
		return
	}
	labtest.Require(t)
	path := filepath.Join(t.TempDir(), "fleet.toml")
	if err := os.WriteFile(path, lab.FleetTOML(3), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, path)
	cmd := l.Command(t.Context(), os.Args[0], "-test.run=^TestRoundTripBudget$", "-test.v")
	cmd.Env = append(cmd.Env, roundTripsEnv+"="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("round trips in the controller: %v\n%s", err, out.String())
	}
	t.Logf("round trips:\n%s", out.String())
}

func roundTripScenario(t *testing.T, path string) {
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range roundTripBudgets {
		state := "unchanged"
		if b.changed {
			state = "changed"
		}
		h, ok := inv.Host(b.host)
		if !ok {
			t.Fatalf("no host %s", b.host)
		}
		c := countRun(t, inv, plan, h)
		want := Unchanged
		if b.changed {
			want = Applied
		}
		if c.status != want {
			t.Fatalf("%s: %s (%v), want %s: the budgets are for that", b.host, c.status, c.err, want)
		}
		hostTrips := c.waited()
		t.Logf("%s, %s: tunnel connection %d round trips, the host %d, in %d TCP connection(s); SSH handshakes: %v (round trips of each on its own stream: %s)\n%s",
			b.host, state, c.tunnel, hostTrips, c.conns, c.handshakes, strings.Join(c.shakes, ", "), c.steps())
		if c.tunnel > b.tunnel {
			t.Errorf("%s, %s: the tunnel's connection took %d round trips, budget %d", b.host, state, c.tunnel, b.tunnel)
		}
		if hostTrips > b.own {
			t.Errorf("%s, %s: %d round trips, budget %d", b.host, state, hostTrips, b.own)
		}
		// The tunnel's first connection is the fleet's; the host's own
		// handshakes are the rest.
		got := c.handshakes[b.host]
		if b.host == inv.SSH.Tunnel {
			got--
		}
		if got != b.handshakes {
			t.Errorf("%s, %s: %d SSH handshakes of its own, want %d (all: %v)", b.host, state, got, b.handshakes, c.handshakes)
		}
	}
}

// counted is one counted run.
type counted struct {
	status Status
	err    error
	// tunnel is the round trips of connecting to the tunnel; total those
	// of the whole run, that connection included.
	tunnel, total int64
	conns         int            // TCP connections to the tunnel
	handshakes    map[string]int // SSH handshakes per host
	// shakes are the round trips of each handshake, as transport logs
	// them: on the stream it ran over (not counting a channel's open).
	shakes []string
	log    []step
}

// step is one call of the host protocol, or a connection, and the round
// trips counted while it ran.
type step struct {
	name  string
	trips int64
	took  time.Duration
}

// waits reports whether the step waits for the host: all but closing.
func (s step) waits() bool { return s.name != "close" }

// waited is the round trips of the host's steps that wait for it: the
// tunnel's connection and closes not counted.
func (c *counted) waited() int64 {
	var n int64
	for _, s := range c.log[1:] { // the first is the tunnel's connection
		if s.waits() {
			n += s.trips
		}
	}
	return n
}

func (c *counted) steps() string {
	var b strings.Builder
	var sum int64
	for _, s := range c.log {
		fmt.Fprintf(&b, "  %-18s %3d round trips  %v\n", s.name, s.trips, s.took.Round(time.Millisecond))
		sum += s.trips
	}
	fmt.Fprintf(&b, "  %-18s %3d round trips (closes and what came between steps are not held)\n", "between steps", c.total-sum)
	return b.String()
}

// countRun runs h alone on a fleet of its own, counting on every TCP
// connection to the tunnel, and connects to the tunnel first so that its
// cost is told apart.
func countRun(t *testing.T, inv *inventory.Inventory, plan *roles.Plan, h *inventory.Host) *counted {
	t.Helper()
	c := &counted{handshakes: map[string]int{}}
	var mu sync.Mutex
	var conns []*transport.RoundTripConn
	total := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		var n int64
		for _, rt := range conns {
			n += rt.RoundTrips()
		}
		return n
	}
	opts := transport.Options{
		Identity: os.Getenv(lab.EnvIdentity), KnownHosts: os.Getenv(lab.EnvKnownHosts),
		// No keepalive may fall into the run: it would be a round trip
		// of nobody's step.
		Timeout: time.Minute,
		WrapConn: func(conn net.Conn) net.Conn {
			rt := transport.CountRoundTrips(delayWrites(conn, linkDelay))
			mu.Lock()
			defer mu.Unlock()
			conns = append(conns, rt)
			return rt
		},
		Logger: slog.New(handshakes{c: c, mu: &mu}),
	}
	fleet, err := Open(inv, opts, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cf := &countingFleet{Fleet: fleet, total: total, c: c}
	cf.record("connect tunnel", func() error {
		if fleet.Tunnel(ctx, h.Site) == "" {
			return fleet.Err(h.Site)
		}
		return nil
	})
	c.tunnel = total()
	res := Run(ctx, plan, []*inventory.Host{h}, cf, RunOptions{})
	c.status, c.err = res[0].Status, res[0].Err
	c.total = total()
	mu.Lock()
	c.conns = len(conns)
	mu.Unlock()
	return c
}

// linkDelay is how much later than written the counted runs' bytes reach
// the tunnel: a distant data centre's link, as the budgets are meant for.
// On loopback the order of the client's writes and reads hangs on its
// goroutines' scheduling: a write made in the background (the next step's
// channel opened ahead) could come after the first bytes of an answer on a
// busy machine, and the rest of the answer, read after it, count as a
// round trip that no link would cost. Behind the delay, such a write
// still leaves before the answer it overlaps can come back.
const linkDelay = 25 * time.Millisecond

// delayWrites returns conn with what is written to it sent d later, in
// order; Write returns at once (a failed send fails the next Write).
func delayWrites(conn net.Conn, d time.Duration) net.Conn {
	c := &delayed{Conn: conn, q: make(chan delayedWrite, 4096)}
	go c.send(d)
	return c
}

type delayed struct {
	net.Conn
	q      chan delayedWrite
	mu     sync.Mutex
	err    error
	closed bool
}

type delayedWrite struct {
	at time.Time
	p  []byte
}

func (c *delayed) send(d time.Duration) {
	for w := range c.q {
		time.Sleep(time.Until(w.at.Add(d)))
		if _, err := c.Conn.Write(w.p); err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}
}

func (c *delayed) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	c.q <- delayedWrite{at: time.Now(), p: bytes.Clone(p)}
	return len(p), nil
}

func (c *delayed) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.q)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// handshakes counts the SSH handshakes transport logs ("connected", with
// the address connected to), per host.
type handshakes struct {
	c    *counted
	mu   *sync.Mutex
	with []slog.Attr
}

func (h handshakes) Enabled(context.Context, slog.Level) bool { return true }
func (h handshakes) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "connected" {
		return nil
	}
	var host string
	var trips int64
	addr := false
	each := func(a slog.Attr) bool {
		switch a.Key {
		case "host":
			host = a.Value.String()
		case "addr":
			addr = true
		case "round_trips":
			trips = a.Value.Int64()
		}
		return true
	}
	for _, a := range h.with {
		each(a)
	}
	r.Attrs(each)
	if addr {
		h.mu.Lock()
		h.c.handshakes[host]++
		h.c.shakes = append(h.c.shakes, fmt.Sprintf("%s %d", host, trips))
		h.mu.Unlock()
	}
	return nil
}
func (h handshakes) WithAttrs(as []slog.Attr) slog.Handler {
	h.with = append(append([]slog.Attr(nil), h.with...), as...)
	return h
}
func (h handshakes) WithGroup(string) slog.Handler { return h }

// countingFleet records the round trips of each connection and each step
// of the host protocol. A run of one host makes them one at a time.
type countingFleet struct {
	Fleet
	total func() int64
	c     *counted
}

func (f *countingFleet) record(name string, do func() error) {
	before, start := f.total(), time.Now()
	err := do()
	if err != nil {
		name += " (failed)"
	}
	f.c.log = append(f.c.log, step{name, f.total() - before, time.Since(start)})
}

func (f *countingFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	var host Host
	var err error
	f.record("connect host", func() error { host, err = f.Fleet.Open(ctx, h); return err })
	if err != nil {
		return nil, err
	}
	return &countingHost{Host: host, f: f}, nil
}

func (f *countingFleet) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	var host Host
	var err error
	f.record("connect again", func() error { host, err = f.Fleet.OpenFresh(ctx, h); return err })
	if err != nil {
		return nil, err
	}
	return &countingHost{Host: host, f: f}, nil
}

var _ Prover = (*countingFleet)(nil)

func (f *countingFleet) Prove(ctx context.Context, h *inventory.Host) (err error) {
	f.record("prove (knock)", func() error { err = f.Fleet.(Prover).Prove(ctx, h); return err })
	return err
}

// countingHost records each step of one host's protocol.
type countingHost struct {
	Host
	f *countingFleet
}

func (h *countingHost) Facts(ctx context.Context) (f remote.Facts, err error) {
	h.f.record("read", func() error { f, err = h.Host.Facts(ctx); return err })
	return f, err
}

func (h *countingHost) Apply(ctx context.Context, a remote.Apply) (err error) {
	h.f.record("apply", func() error { err = h.Host.Apply(ctx, a); return err })
	return err
}

func (h *countingHost) Confirm(ctx context.Context, c remote.Confirm) (conf remote.Confirmation, err error) {
	h.f.record("confirm+persist", func() error { conf, err = h.Host.Confirm(ctx, c); return err })
	return conf, err
}

func (h *countingHost) Persist(ctx context.Context, p remote.Persist) (err error) {
	h.f.record("persist", func() error { err = h.Host.Persist(ctx, p); return err })
	return err
}

func (h *countingHost) Settle(ctx context.Context, token string, keep bool) (o remote.Outcome, err error) {
	h.f.record("settle", func() error { o, err = h.Host.Settle(ctx, token, keep); return err })
	return o, err
}

func (h *countingHost) Close() (err error) {
	h.f.record("close", func() error { err = h.Host.Close(); return err })
	return err
}
