package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// probeSession is a Session made of functions.
type probeSession struct {
	RunFn func(ctx context.Context, cmd string, stdin []byte) (Result, error)
}

func (s *probeSession) Run(ctx context.Context, cmd string, stdin []byte) (Result, error) {
	return s.RunFn(ctx, cmd, stdin)
}
func (s *probeSession) Close() error { return nil }

// probeDialer is a Dialer made of a function.
type probeDialer struct {
	DialFn func(ctx context.Context, t Target) (Session, error)
}

func (d *probeDialer) Dial(ctx context.Context, t Target) (Session, error) { return d.DialFn(ctx, t) }

var (
	_ Session = (*probeSession)(nil)
	_ Dialer  = (*probeDialer)(nil)
)

// shellSession runs commands on this machine with shell (sh or bash), the
// way sshd runs them with the user's login shell.
func shellSession(t *testing.T, shell string) *probeSession {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		t.Skipf("no %s: %v", shell, err)
	}
	return &probeSession{RunFn: func(ctx context.Context, cmd string, stdin []byte) (Result, error) {
		c := exec.CommandContext(ctx, shell, "-c", cmd)
		var out, errb bytes.Buffer
		c.Stdin, c.Stdout, c.Stderr = bytes.NewReader(stdin), &out, &errb
		err := c.Run()
		res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			res.ExitStatus = exit.ExitCode()
			return res, &RemoteError{Host: "local", Cmd: cmd, ExitStatus: res.ExitStatus, Stderr: res.Stderr}
		}
		return res, err
	}}
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

// TestProbeScript runs the real probe command in sh and bash, as sshd
// would with either login shell, against ports of this machine.
func TestProbeScript(t *testing.T) {
	open, closed := ports(t)
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			s := shellSession(t, shell)
			var in strings.Builder
			in.WriteString("2 4\n")
			want := map[int]string{}
			// More probes than the batch: every one must answer, once.
			for i := range 10 {
				port, result := open, "connected"
				if i%2 == 1 {
					port, result = closed, "refused"
				}
				fmt.Fprintf(&in, "%d 127.0.0.1 %d\n", i, port)
				want[i] = result
			}
			in.WriteString("10 127.0.0.1 80;id\n")
			in.WriteString("11 $(id) 80\n")
			in.WriteString("x 127.0.0.1 80\n") // no ID: no answer
			res, err := s.Run(context.Background(), cmdProbe, []byte(in.String()))
			if err != nil {
				t.Fatalf("%v: %s", err, res.Stderr)
			}
			lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
			got := map[int]string{}
			for _, l := range lines {
				var id int
				var result string
				if _, err := fmt.Sscanf(l, "%d %s", &id, &result); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if _, dup := got[id]; dup {
					t.Errorf("probe %d answered twice", id)
				}
				got[id] = result
			}
			want[10], want[11] = "error", "error"
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s\noutput:\n%s", diff, res.Stdout)
			}
			if !strings.Contains(string(res.Stdout), "11 error bad address: $(id)") {
				t.Errorf("a bad address must be refused as it is:\n%s", res.Stdout)
			}
		})
	}
}

func TestProbeScriptRefusesBadHeader(t *testing.T) {
	s := shellSession(t, "sh")
	for _, header := range []string{"", "2;id 4", "2 0", "2 x"} {
		_, err := s.Run(context.Background(), cmdProbe, []byte(header+"\n0 127.0.0.1 22\n"))
		var re *RemoteError
		if !errors.As(err, &re) || re.ExitStatus != 2 {
			t.Errorf("header %q: got %v, want exit status 2", header, err)
		}
	}
}

func TestParseProbeOutput(t *testing.T) {
	got := parseProbeOutput("0 connected\n1 refused\n2 timeout\n3 error exit 1: bash: connect: No route to host\nnoise\n\n")
	for i, want := range []Observation{
		{Reach: roles.Reachable, Detail: "connected"},
		{Reach: roles.Reachable, Detail: "refused"},
		{Reach: roles.Filtered, Detail: "timed out"},
	} {
		if got[i] != want {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want)
		}
	}
	if o := got[3]; o.Reach != "" || o.Err == nil || o.Err.Error() != "exit 1: bash: connect: No route to host" {
		t.Errorf("line 3: got %+v", o)
	}
	if len(got) != 4 {
		t.Errorf("got %d observations, want 4: %v", len(got), got)
	}
}

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

// answering is a fleet whose hosts answer cmdProbe by the destination
// port: 3306 connects, 22 times out, anything else is refused.
type answering struct {
	mu       sync.Mutex
	dials    map[string]int
	stdin    map[string]string
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func (a *answering) dialer(t *testing.T, fail map[string]error) *probeDialer {
	a.dials, a.stdin = map[string]int{}, map[string]string{}
	return &probeDialer{DialFn: func(ctx context.Context, tg Target) (Session, error) {
		a.mu.Lock()
		a.dials[tg.Name]++
		a.mu.Unlock()
		if err := fail[tg.Name]; err != nil {
			return nil, err
		}
		return &probeSession{RunFn: func(ctx context.Context, cmd string, stdin []byte) (Result, error) {
			if cmd != cmdProbe {
				t.Errorf("host %s ran %q, want cmdProbe", tg.Name, cmd)
			}
			n := a.inFlight.Add(1)
			defer a.inFlight.Add(-1)
			for {
				m := a.maxIn.Load()
				if n <= m || a.maxIn.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			a.mu.Lock()
			a.stdin[tg.Name] = string(stdin)
			a.mu.Unlock()
			var out strings.Builder
			lines := strings.Split(strings.TrimSpace(string(stdin)), "\n")
			for _, l := range lines[1:] {
				var id, port int
				var addr string
				fmt.Sscanf(l, "%d %s %d", &id, &addr, &port)
				switch port {
				case 3306:
					fmt.Fprintf(&out, "%d connected\n", id)
				case 22:
					fmt.Fprintf(&out, "%d timeout\n", id)
				case 9999:
					// no answer
				default:
					fmt.Fprintf(&out, "%d refused\n", id)
				}
			}
			return Result{Stdout: []byte(out.String())}, nil
		}}, nil
	}}
}

func TestRunProbes(t *testing.T) {
	inv := loadProbeFleet(t)
	a1, a2, d1, tun := host(t, inv, "a1"), host(t, inv, "a2"), host(t, inv, "d1"), host(t, inv, "t")
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	probes := []Probe{
		{From: a1, Addr: ap("198.18.0.5:3306")},
		{From: a2, Addr: ap("198.18.0.5:3306")},
		{From: d1, Addr: ap("198.18.0.3:22")},
		{From: a1, Addr: ap("198.18.0.6:22")},
		{From: tun, Addr: ap("198.18.0.5:80")},
		{From: a1, Addr: ap("198.18.0.4:9999")},
		{From: host(t, inv, "d2"), Addr: ap("198.18.0.3:3306")},
	}
	var a answering
	down := errors.New("host d2: connect to 198.18.0.6:22 through tunnel t: i/o timeout")
	d := a.dialer(t, map[string]error{"d2": down})
	got := RunProbes(context.Background(), inv, probes, d, ProbeOptions{Timeout: time.Second})

	want := []Observation{
		{Reach: roles.Reachable, Detail: "connected"},
		{Reach: roles.Reachable, Detail: "connected"},
		{Reach: roles.Filtered, Detail: "timed out"},
		{Reach: roles.Filtered, Detail: "timed out"},
		{Reach: roles.Reachable, Detail: "refused"},
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("probe %d (%s -> %s): got %+v, want %+v", i, probes[i].From.Name, probes[i].Addr, got[i], w)
		}
	}
	if err := got[5].Err; err == nil || err.Error() != "probe from a1 to 198.18.0.4:9999: the host gave no answer for it" {
		t.Errorf("probe without an answer: got %+v", got[5])
	}
	if err := got[6].Err; !errors.Is(err, down) || got[6].Reach != "" {
		t.Errorf("probe from an unreachable host: got %+v, want its dial error", got[6])
	}
	// One session per host, however many probes it makes; the data on stdin.
	if diff := cmp.Diff(map[string]int{"a1": 1, "a2": 1, "d1": 1, "d2": 1, "t": 1}, a.dials); diff != "" {
		t.Errorf("dials per host (-want +got):\n%s", diff)
	}
	if want := "1 64\n0 198.18.0.5 3306\n3 198.18.0.6 22\n5 198.18.0.4 9999\n"; a.stdin["a1"] != want {
		t.Errorf("a1's stdin: got %q, want %q", a.stdin["a1"], want)
	}
	if n := a.maxIn.Load(); n > 2 {
		t.Errorf("%d hosts probed at once, want at most parallel = 2", n)
	}
}

func TestRunProbesRemoteFailure(t *testing.T) {
	inv := loadProbeFleet(t)
	d := &probeDialer{DialFn: func(ctx context.Context, tg Target) (Session, error) {
		return &probeSession{RunFn: func(ctx context.Context, cmd string, stdin []byte) (Result, error) {
			re := &RemoteError{Host: tg.Name, Cmd: cmd, ExitStatus: 3, Stderr: []byte("bash is not installed: fwpush probes with bash's /dev/tcp")}
			return Result{ExitStatus: 3, Stderr: re.Stderr}, re
		}}, nil
	}}
	got := RunProbes(context.Background(), inv, []Probe{{From: host(t, inv, "a1"), Addr: netip.MustParseAddrPort("198.18.0.5:3306")}}, d, ProbeOptions{})
	var re *RemoteError
	if !errors.As(got[0].Err, &re) || !strings.Contains(got[0].Err.Error(), "bash is not installed") {
		t.Errorf("got %+v, want the remote error with its stderr", got[0])
	}
}

// TestRunProbesBounded: a host that never answers holds the round no
// longer than its bound.
func TestRunProbesBounded(t *testing.T) {
	inv := loadProbeFleet(t)
	inv.SSH.Timeout = 50 * time.Millisecond
	d := &probeDialer{DialFn: func(ctx context.Context, tg Target) (Session, error) {
		return &probeSession{RunFn: func(ctx context.Context, cmd string, stdin []byte) (Result, error) {
			<-ctx.Done()
			return Result{ExitStatus: -1}, fmt.Errorf("host %s: %w", tg.Name, ctx.Err())
		}}, nil
	}}
	start := time.Now()
	got := RunProbes(context.Background(), inv, []Probe{{From: host(t, inv, "a1"), Addr: netip.MustParseAddrPort("198.18.0.5:3306")}}, d, ProbeOptions{Timeout: 100 * time.Millisecond})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s, want about 1.2s (one batch + 2 SSH timeouts)", took)
	}
	if !errors.Is(got[0].Err, context.DeadlineExceeded) {
		t.Errorf("got %+v, want a deadline error", got[0])
	}
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
		{Addr: lo(open)},
		{Addr: lo(closed)},
		{Addr: netip.MustParseAddrPort("203.0.113.1:80")},
		{Addr: netip.MustParseAddrPort("203.0.113.1:443")},
	}
	d := &probeDialer{DialFn: func(context.Context, Target) (Session, error) {
		t.Error("the controller's probes must not use SSH")
		return nil, errors.New("no")
	}}
	start := time.Now()
	got := RunProbes(context.Background(), inv, probes, d, ProbeOptions{Timeout: 200 * time.Millisecond, DialLocal: dial})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s: the timeout bounds each probe", took)
	}
	want := []Observation{
		{Reach: roles.Reachable, Detail: "connected"},
		{Reach: roles.Reachable, Detail: "refused"},
		{Reach: roles.Filtered, Detail: "timed out"},
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("probe %d (%s): got %+v, want %+v", i, probes[i].Addr, got[i], w)
		}
	}
	if o := got[3]; o.Reach != "" || !errors.Is(o.Err, syscall.EHOSTUNREACH) {
		t.Errorf("no route to host proves nothing: got %+v, want an error", o)
	}
}
