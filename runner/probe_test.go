package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

const probeFleet = `
[ssh]
tunnel = "t"
timeout = "1s"
parallel = 2
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.a1]
role = "app"
private_ip = "198.18.0.3"
[hosts.a2]
role = "app"
private_ip = "198.18.0.4"
[hosts.d1]
role = "db"
private_ip = "198.18.0.5"
[hosts.d2]
role = "db"
private_ip = "198.18.0.6"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.app]
template = "private"
[roles.db]
template = "private"
allow = [ { from = "app", tcp = [3306] } ]
`

func loadProbeFleet(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("probe.toml", []byte(probeFleet))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func host(t *testing.T, inv *inventory.Inventory, name string) *inventory.Host {
	t.Helper()
	h, ok := inv.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return h
}

// prober is a fleet whose hosts answer probes by the destination port:
// 3306 connects, 22 times out, 9999 gets no answer, anything else is
// refused. probe, when set, replaces that.
type prober struct {
	t        *testing.T
	fail     map[string]error // Open fails for these hosts
	probe    func(ctx context.Context, host string, ps []remote.Probe) ([]remote.ProbeResult, time.Duration, error)
	mu       sync.Mutex
	opens    map[string]int
	got      map[string][]remote.Probe
	opts     remote.ProbeOptions
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

var _ Fleet = (*prober)(nil)

func (p *prober) Open(_ context.Context, h *inventory.Host) (Host, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opens == nil {
		p.opens, p.got = map[string]int{}, map[string][]remote.Probe{}
	}
	p.opens[h.Name]++
	if err := p.fail[h.Name]; err != nil {
		return nil, err
	}
	return &probeHost{p: p, name: h.Name}, nil
}

func (p *prober) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	p.t.Errorf("host %s: a fresh connection to probe", h.Name)
	return p.Open(ctx, h)
}

type probeHost struct {
	Host // the push's steps: not called
	p    *prober
	name string
}

func (h *probeHost) Close() error { return nil }

func (h *probeHost) Probe(ctx context.Context, ps []remote.Probe, o remote.ProbeOptions) ([]remote.ProbeResult, time.Duration, error) {
	p := h.p
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		m := p.maxIn.Load()
		if n <= m || p.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	p.mu.Lock()
	p.got[h.name] = ps
	p.opts = o
	p.mu.Unlock()
	if p.probe != nil {
		return p.probe(ctx, h.name, ps)
	}
	time.Sleep(20 * time.Millisecond)
	out := make([]remote.ProbeResult, len(ps))
	for i, pr := range ps {
		switch pr.Addr.Port() {
		case 3306:
			out[i] = remote.ProbeResult{Result: "connected", Took: time.Millisecond}
		case 22:
			out[i] = remote.ProbeResult{Result: "timeout", Took: o.Floor}
		case 9999:
			out[i] = remote.ProbeResult{Err: errors.New("the host gave no answer for it")}
		default:
			out[i] = remote.ProbeResult{Result: "refused", Took: time.Millisecond}
		}
	}
	return out, o.Floor, nil
}

// reachDetail keeps what a test compares of an Observation.
func reachDetail(o Observation) string { return string(o.Reach) + "/" + o.Detail }

func TestRunProbes(t *testing.T) {
	inv := loadProbeFleet(t)
	a1, a2, d1, tun := host(t, inv, "a1"), host(t, inv, "a2"), host(t, inv, "d1"), host(t, inv, "t")
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	probes := []Probe{
		{From: a1, Addr: ap("198.18.0.5:3306"), Expect: roles.Reachable},
		{From: a2, Addr: ap("198.18.0.5:3306"), Expect: roles.Reachable},
		{From: d1, Addr: ap("198.18.0.3:22"), Expect: roles.Filtered},
		{From: a1, Addr: ap("198.18.0.6:22"), Expect: roles.Filtered},
		{From: tun, Addr: ap("198.18.0.5:80"), Expect: roles.Reachable},
		{From: a1, Addr: ap("198.18.0.4:9999"), Expect: roles.Filtered},
		{From: host(t, inv, "d2"), Addr: ap("198.18.0.3:3306"), Expect: roles.Reachable},
	}
	down := errors.New("host d2: connect to 198.18.0.6:22 through tunnel t: i/o timeout")
	p := &prober{t: t, fail: map[string]error{"d2": down}}
	got := RunProbes(context.Background(), inv, probes, p, ProbeOptions{Timeout: time.Second})

	for i, want := range []string{"reachable/connected", "reachable/connected", "filtered/timed out", "filtered/timed out", "reachable/refused"} {
		if reachDetail(got[i]) != want || got[i].Err != nil {
			t.Errorf("probe %d (%s -> %s): got %+v, want %s", i, probes[i].From.Name, probes[i].Addr, got[i], want)
		}
	}
	if err := got[5].Err; err == nil || err.Error() != "probe from a1 to 198.18.0.4:9999: the host gave no answer for it" {
		t.Errorf("probe without an answer: got %+v", got[5])
	}
	if err := got[6].Err; !errors.Is(err, down) || got[6].Reach != "" {
		t.Errorf("probe from an unreachable host: got %+v, want its dial error", got[6])
	}
	// One connection per host, however many probes it makes.
	if diff := cmp.Diff(map[string]int{"a1": 1, "a2": 1, "d1": 1, "d2": 1, "t": 1}, p.opens); diff != "" {
		t.Errorf("connections per host (-want +got):\n%s", diff)
	}
	// The probes expected reachable calibrate the others' timeout.
	want := []remote.Probe{{Addr: ap("198.18.0.5:3306"), Calibrate: true}, {Addr: ap("198.18.0.6:22")}, {Addr: ap("198.18.0.4:9999")}}
	if diff := cmp.Diff(want, p.got["a1"], cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("a1's probes (-want +got):\n%s", diff)
	}
	if want := (remote.ProbeOptions{Timeout: time.Second, Floor: DefaultFloor, Factor: DefaultFactor, Batch: DefaultBatch}); p.opts != want {
		t.Errorf("probe options %+v, want %+v", p.opts, want)
	}
	if n := p.maxIn.Load(); n > 2 {
		t.Errorf("%d hosts probed at once, want at most parallel = 2", n)
	}
}

func TestRunProbesRemoteFailure(t *testing.T) {
	inv := loadProbeFleet(t)
	p := &prober{t: t, probe: func(_ context.Context, host string, _ []remote.Probe) ([]remote.ProbeResult, time.Duration, error) {
		re := &transport.RemoteError{Host: host, Cmd: "probe", ExitStatus: 3, Stderr: []byte("bash is not installed: fwpush probes with bash's /dev/tcp")}
		return nil, 0, &remote.StepError{Step: "probe", Err: re}
	}}
	got := RunProbes(context.Background(), inv, []Probe{{From: host(t, inv, "a1"), Addr: netip.MustParseAddrPort("198.18.0.5:3306")}}, p, ProbeOptions{})
	var re *transport.RemoteError
	if !errors.As(got[0].Err, &re) || !strings.Contains(got[0].Err.Error(), "bash is not installed") {
		t.Errorf("got %+v, want the remote error with its stderr", got[0])
	}
}

// TestRunProbesBounded: every host's probes are bounded by the time their
// batches need (each its probe timeout and a second) and twice the SSH
// timeout, whatever the host does. The bound is read off the deadline of
// the context the host's session is given, not timed: that deadline is
// what ends a host that never answers, with the deadline's error.
func TestRunProbesBounded(t *testing.T) {
	t.Parallel()
	inv := loadProbeFleet(t)
	inv.SSH.Timeout = 50 * time.Millisecond
	probes := func(reachable, filtered int) []Probe {
		var ps []Probe
		for i := range reachable + filtered {
			expect := roles.Filtered
			if i < reachable {
				expect = roles.Reachable
			}
			ps = append(ps, Probe{From: host(t, inv, "a1"), Addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.5"), uint16(1000+i)), Expect: expect})
		}
		return ps
	}
	for _, tc := range []struct {
		name                string
		reachable, filtered int
		batch               int
		want                time.Duration
	}{
		{"one batch", 1, 0, 0, 1200 * time.Millisecond},
		{"a batch for each phase", 1, 1, 0, 2300 * time.Millisecond},
		{"batches of two", 3, 5, 2, 5600 * time.Millisecond}, // 2 + 3 batches
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				deadline time.Time
				ok       bool
			)
			p := &prober{t: t, probe: func(ctx context.Context, _ string, ps []remote.Probe) ([]remote.ProbeResult, time.Duration, error) {
				mu.Lock()
				defer mu.Unlock()
				deadline, ok = ctx.Deadline()
				return make([]remote.ProbeResult, len(ps)), 0, nil
			}}
			before := time.Now()
			RunProbes(context.Background(), inv, probes(tc.reachable, tc.filtered), p, ProbeOptions{Timeout: 100 * time.Millisecond, Batch: tc.batch})
			after := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if !ok || deadline.Before(before.Add(tc.want)) || deadline.After(after.Add(tc.want)) {
				t.Errorf("the host's session has deadline %v (set: %v), want %s after the round began", deadline.Sub(before), ok, tc.want)
			}
		})
	}
	t.Run("a host that never answers", func(t *testing.T) {
		p := &prober{t: t, probe: func(ctx context.Context, host string, _ []remote.Probe) ([]remote.ProbeResult, time.Duration, error) {
			<-ctx.Done()
			return nil, 0, fmt.Errorf("host %s: %w", host, ctx.Err())
		}}
		got := RunProbes(context.Background(), inv, probes(1, 0), p, ProbeOptions{Timeout: 100 * time.Millisecond})
		if !errors.Is(got[0].Err, context.DeadlineExceeded) {
			t.Errorf("got %+v, want the deadline's error", got[0])
		}
	})
}

// ports returns a port something listens on (and accepts, until the test
// ends) and one nothing listens on, both on 127.0.0.1.
func ports(t *testing.T) (open, closed int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = l2.Addr().(*net.TCPAddr).Port
	l2.Close()
	return l.Addr().(*net.TCPAddr).Port, closed
}

func TestRunProbesFromTheController(t *testing.T) {
	inv := loadProbeFleet(t)
	open, closed := ports(t)
	lo := func(port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	}
	fake := map[netip.AddrPort]error{
		netip.MustParseAddrPort("203.0.113.1:80"):  nil, // blackholed: the fake waits for the deadline
		netip.MustParseAddrPort("203.0.113.1:443"): &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)},
	}
	var nd net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap := netip.MustParseAddrPort(addr)
		if err, ok := fake[ap]; ok {
			if err != nil {
				return nil, err
			}
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		}
		return nd.DialContext(ctx, network, addr)
	}
	probes := []Probe{
		{Addr: lo(open), Expect: roles.Reachable},
		{Addr: lo(closed), Expect: roles.Reachable},
		{Addr: netip.MustParseAddrPort("203.0.113.1:80"), Expect: roles.Filtered},
		{Addr: netip.MustParseAddrPort("203.0.113.1:443"), Expect: roles.Filtered},
	}
	p := &prober{t: t, fail: map[string]error{}}
	got := RunProbes(context.Background(), inv, probes, p, ProbeOptions{Timeout: 5 * time.Second, Floor: 100 * time.Millisecond, DialLocal: dial})
	for i, w := range []string{"reachable/connected", "reachable/refused", "filtered/timed out"} {
		if reachDetail(got[i]) != w || got[i].Err != nil {
			t.Errorf("probe %d (%s): got %+v, want %s", i, probes[i].Addr, got[i], w)
		}
	}
	// The blackholed probe waited the adaptive timeout, not the 5s: the
	// loopback answers calibrated it.
	if want := remote.AdaptiveTimeout(max(got[0].Took, got[1].Took), remote.ProbeOptions{Timeout: 5 * time.Second, Floor: 100 * time.Millisecond, Factor: DefaultFactor}); got[2].Took < want || got[2].Took > want+time.Second {
		t.Errorf("the filtered probe waited %s, want %s", got[2].Took, want)
	}
	if len(p.opens) != 0 {
		t.Errorf("the controller's probes used SSH: %v", p.opens)
	}
	if o := got[3]; o.Reach != "" || !errors.Is(o.Err, syscall.EHOSTUNREACH) {
		t.Errorf("no route to host proves nothing: got %+v, want an error", o)
	}
}

// TestRunProbesReportsProgress: OnProbed counts every probe once, whether
// it was made, failed with its host, or ran on the controller.
func TestRunProbesReportsProgress(t *testing.T) {
	inv := loadProbeFleet(t)
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	probes := []Probe{
		{From: host(t, inv, "a1"), Addr: ap("198.18.0.5:3306"), Expect: roles.Reachable},
		{From: host(t, inv, "a1"), Addr: ap("198.18.0.6:22"), Expect: roles.Filtered},
		{From: host(t, inv, "d2"), Addr: ap("198.18.0.3:3306"), Expect: roles.Reachable},
		{Addr: ap("127.0.0.1:1"), Expect: roles.Filtered},
	}
	p := &prober{t: t, fail: map[string]error{"d2": errors.New("down")}}
	var done atomic.Int64
	var calls atomic.Int64
	RunProbes(context.Background(), inv, probes, p, ProbeOptions{Timeout: time.Second, OnProbed: func(n int) {
		done.Add(int64(n))
		calls.Add(1)
	}})
	if done.Load() != int64(len(probes)) || calls.Load() != 3 {
		t.Errorf("OnProbed counted %d probes in %d calls, want %d in 3 (a1, d2, the controller's one)", done.Load(), calls.Load(), len(probes))
	}
}
