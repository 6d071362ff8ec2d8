package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/runner/transport"
)

// shellSession runs scripts on this machine with shell (sh or bash), the
// way sshd runs them with the user's login shell; with netns set, in a
// network namespace of its own (see isolated).
type shellSession struct {
	t     *testing.T
	shell string
	pre   string // run first, in the same namespace
	path  string // put first on $PATH
}

func newShellSession(t *testing.T, shell string) *shellSession {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		t.Skipf("no %s: %v", shell, err)
	}
	return &shellSession{t: t, shell: shell}
}

func (s *shellSession) Run(ctx context.Context, script string, stdin []byte) (transport.Result, error) {
	c := exec.CommandContext(ctx, s.shell, "-c", script)
	if s.pre != "" {
		// unshare -n: a network namespace that goes with the process.
		c = exec.CommandContext(ctx, "unshare", "--net", "--", "sh", "-c", s.pre+` && exec "$0" -c "$1"`, s.shell, script)
	}
	if s.path != "" {
		c.Env = append(os.Environ(), "PATH="+s.path+":"+os.Getenv("PATH"))
	}
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = bytes.NewReader(stdin), &out, &errb
	err := c.Run()
	res := transport.Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		res.ExitStatus = exit.ExitCode()
		return res, &transport.RemoteError{Host: "local", Cmd: script, ExitStatus: res.ExitStatus, Stderr: res.Stderr}
	}
	return res, err
}

func (s *shellSession) Close() error { return nil }

// isolated is a shell session in a network namespace of its own, with
// loopback up and TCP port 9 dropped: a filtered port. It needs root.
func isolated(t *testing.T) *shellSession {
	t.Helper()
	testenv.Root(t)
	for _, tool := range []string{"unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	s := newShellSession(t, "sh")
	s.pre = "ip link set lo up && iptables -w -A INPUT -p tcp --dport 9 -j DROP"
	return s
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

func lo(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// TestProbeScript runs the real probe script in sh and bash, as sshd would
// with either login shell, against ports of this machine.
func TestProbeScript(t *testing.T) {
	t.Parallel()
	open, closed := ports(t)
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			h := newHost(newShellSession(t, shell))
			var probes []Probe
			var want []string
			// More probes than the batch, in both phases: every one must
			// answer, once.
			for i := range 10 {
				port, result := open, "connected"
				if i%2 == 1 {
					port, result = closed, "refused"
				}
				probes = append(probes, Probe{Addr: lo(port), Calibrate: i < 5})
				want = append(want, result)
			}
			got, timeout, err := h.Probe(t.Context(), probes, ProbeOptions{Timeout: 2 * time.Second, Floor: 300 * time.Millisecond, Factor: 10, Batch: 4})
			if err != nil {
				t.Fatal(err)
			}
			var results []string
			for i, r := range got {
				results = append(results, r.Result)
				if r.Err != nil || r.Took <= 0 || r.Took > time.Second {
					t.Errorf("probe %d: %+v", i, r)
				}
			}
			if diff := cmp.Diff(want, results); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if want := AdaptiveTimeout(slowest(probes, got), ProbeOptions{Timeout: 2 * time.Second, Floor: 300 * time.Millisecond, Factor: 10}); timeout != want {
				t.Errorf("adaptive timeout %s, want %s", timeout, want)
			}
		})
	}
}

// Addresses and ports that are not numbers never reach a shell as code.
func TestProbeScriptRefusesBadLines(t *testing.T) {
	t.Parallel()
	s := newShellSession(t, "sh")
	in := "2000000 4 200000 10 0\n0 127.0.0.1 80;id 1\n1 $(id) 80 2\n2 127.0.0.1 80 3\nx 127.0.0.1 80 1\n"
	res, err := s.Run(t.Context(), wrap(sent().probe, plain), []byte("10\n"+in))
	if err != nil {
		t.Fatalf("%v: %s", err, res.Stderr)
	}
	got, _ := parseProbeOutput(string(res.Stdout), 3)
	for i, want := range []string{"bad port: 80;id", "bad address: $(id)", "bad phase: 3"} {
		if got[i].Err == nil || got[i].Err.Error() != want {
			t.Errorf("line %d: %+v, want the error %q\n%s", i, got[i], want, res.Stdout)
		}
	}
}

func TestProbeScriptRefusesBadHeader(t *testing.T) {
	t.Parallel()
	s := newShellSession(t, "sh")
	for _, header := range []string{"", "2000000;id 4 1 1 0", "2000000 0 1 1 0", "2000000 x 1 1 0", "2000000 4 1 1", "2000000 4 1 1 x"} {
		_, err := s.Run(t.Context(), wrap(sent().probe, plain), []byte("10\n"+header+"\n0 127.0.0.1 22 1\n"))
		var re *transport.RemoteError
		if !errors.As(err, &re) || re.ExitStatus != 2 {
			t.Errorf("header %q: got %v, want exit status 2", header, err)
		}
	}
}

// TestProbeAdaptiveTimeout: the probes that can only time out wait a
// multiple of the host's slowest answer (here the floor: loopback is
// fast), not the whole timeout; without any answer, the whole timeout.
func TestProbeAdaptiveTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		probes []Probe
		want   time.Duration
	}{
		{"calibrated", []Probe{{Addr: lo(1), Calibrate: true}, {Addr: lo(2), Calibrate: true}, {Addr: lo(9)}}, 0},
		{"nothing answered", []Probe{{Addr: lo(9), Calibrate: true}, {Addr: lo(9)}}, 700 * time.Millisecond},
		{"no calibration", []Probe{{Addr: lo(9)}}, 700 * time.Millisecond},
		// Nothing to calibrate on, but a round trip of 30ms to the host.
		{"no calibration, a measured round trip", []Probe{{Addr: lo(9)}}, 300 * time.Millisecond},
		// The host reads a batch's answers in turn: those after a filtered
		// probe are read once its wait is over, and are answers still,
		// timed from their own connect.
		{"answers read after a filtered probe's wait", []Probe{{Addr: lo(9)}, {Addr: lo(1)}, {Addr: lo(9)}, {Addr: lo(2)}}, 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Session = isolated(t)
			if strings.Contains(tc.name, "round trip") {
				s = pinging{s, 30 * time.Millisecond}
			}
			h := newHost(s)
			got, timeout, err := h.Probe(t.Context(), tc.probes, ProbeOptions{Timeout: 700 * time.Millisecond, Floor: 250 * time.Millisecond, Factor: 10, Batch: 8})
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == 0 {
				// Loopback answers fast: the floor, unless this machine is
				// so busy that the answers took longer than 25ms.
				want = AdaptiveTimeout(slowest(tc.probes, got), ProbeOptions{Timeout: 700 * time.Millisecond, Floor: 250 * time.Millisecond, Factor: 10})
				if want >= 700*time.Millisecond {
					t.Logf("loopback answered in %s: too slow to tell the adaptive timeout from the whole one", want/10)
				}
			}
			if timeout != want {
				t.Errorf("timeout %s, want %s", timeout, want)
			}
			for i, p := range tc.probes {
				want := "refused"
				if p.Addr.Port() == 9 {
					want = "timeout"
				}
				if got[i].Result != want {
					t.Errorf("probe %d to %s: %+v, want %s", i, p.Addr, got[i], want)
				}
				if want == "timeout" && !p.Calibrate && got[i].Took != timeout {
					t.Errorf("probe %d waited %s, want %s", i, got[i].Took, timeout)
				}
				if want == "refused" && got[i].Took >= timeout {
					t.Errorf("probe %d took %s: timed from when it was read, not from its connect", i, got[i].Took)
				}
			}
		})
	}
}

// slowest is the slowest answer of the probes that calibrate.
func slowest(probes []Probe, got []ProbeResult) time.Duration {
	var s time.Duration
	for i, p := range probes {
		if p.Calibrate && (got[i].Result == "connected" || got[i].Result == "refused") {
			s = max(s, got[i].Took)
		}
	}
	return s
}

func TestAdaptiveTimeout(t *testing.T) {
	o := ProbeOptions{Timeout: 2 * time.Second, Floor: 200 * time.Millisecond, Factor: 10}
	for _, tc := range []struct{ slowest, want time.Duration }{
		{0, 2 * time.Second},                       // nothing answered: all of it
		{time.Millisecond, 200 * time.Millisecond}, // a fast network: the floor
		{50 * time.Millisecond, 500 * time.Millisecond},
		{time.Second, 2 * time.Second}, // a slow link: never less than asked
	} {
		if got := AdaptiveTimeout(tc.slowest, o); got != tc.want {
			t.Errorf("slowest answer %s: timeout %s, want %s", tc.slowest, got, tc.want)
		}
	}
}

// TestProbeAdapt: the host times phase 2 as AdaptiveTimeout does, from the
// answers of phase 1, or from the round trip fwpush measured when there
// was nothing to make in phase 1. It runs probe.bash's own calibrate and
// adapt on the answers of the table (the probes themselves are
// TestProbeAdaptiveTimeout's, in a network namespace).
func TestProbeAdapt(t *testing.T) {
	t.Parallel()
	o := ProbeOptions{Timeout: 2 * time.Second, Floor: 200 * time.Millisecond, Factor: 10}
	script := code("probe.bash")
	fn := func(name string) string {
		t.Helper()
		i := strings.Index(script, "\n"+name+"() {\n")
		if i < 0 {
			t.Fatalf("probe.bash has no function %s", name)
		}
		j := strings.Index(script[i:], "\n}\n")
		return script[i+1 : i+j+3]
	}
	lib := fn("calibrate") + fn("adapt")
	for _, tc := range []struct {
		name    string
		answers []string // phase 1, one per probe: "connected US", "refused US" or "timeout US"
		hint    time.Duration
		slowest time.Duration // what AdaptiveTimeout is given
	}{
		{"the slowest answer", []string{"connected 1000", "refused 30000", "connected 20000"}, 0, 30 * time.Millisecond},
		{"a fast network: the floor", []string{"connected 1000"}, 0, time.Millisecond},
		{"a slow link: never more than the timeout", []string{"refused 500000"}, 0, 500 * time.Millisecond},
		{"no answer: the whole timeout", []string{"timeout 2000000", "timeout 2000000"}, 0, 0},
		{"answers and silence", []string{"timeout 2000000", "connected 40000"}, 0, 40 * time.Millisecond},
		{"errors are no answer", []string{"error exit 1: bash: connect: No route to host", "connected 3000"}, 0, 3 * time.Millisecond},
		{"nothing to calibrate on: the round trip", nil, 40 * time.Millisecond, 40 * time.Millisecond},
		{"nothing at all", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers strings.Builder
			for i, a := range tc.answers {
				fmt.Fprintf(&answers, "%d %s\n", i, a)
			}
			code := fmt.Sprintf("T=%d F=%d K=%d H=%d\n%scalibrate <<< \"$1\"\necho \"timeout $(adapt \"$slowest\")\"\n",
				o.Timeout.Microseconds(), o.Floor.Microseconds(), o.Factor, tc.hint.Microseconds(), lib)
			out, err := exec.CommandContext(t.Context(), "bash", "-c", code, "adapt", answers.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.HasPrefix(string(out), answers.String()) {
				t.Errorf("calibrate did not pass phase 1's answers on:\n%s", out)
			}
			_, timeout := parseProbeOutput(string(out), len(tc.answers))
			if want := AdaptiveTimeout(tc.slowest, o); timeout != want {
				t.Errorf("phase 2 waits %s, want %s\n%s", timeout, want, out)
			}
		})
	}
}

func TestParseProbeOutput(t *testing.T) {
	got, timeout := parseProbeOutput("0 connected 120\n1 refused 95\ntimeout 200000\n2 timeout 200000\n3 error exit 1: bash: connect: No route to host\nnoise\n7 connected 1\n\n", 5)
	want := []ProbeResult{
		{Result: "connected", Took: 120 * time.Microsecond},
		{Result: "refused", Took: 95 * time.Microsecond},
		{Result: "timeout", Took: 200 * time.Millisecond},
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], w)
		}
	}
	if r := got[3]; r.Result != "" || r.Err == nil || r.Err.Error() != "exit 1: bash: connect: No route to host" {
		t.Errorf("line 3: got %+v", r)
	}
	if r := got[4]; r != (ProbeResult{}) {
		t.Errorf("probe 4, unanswered: got %+v", r)
	}
	if timeout != 200*time.Millisecond {
		t.Errorf("timeout %s, want 200ms", timeout)
	}
}

// A probe the host said nothing about is an error, not a silent zero.
func TestProbeUnanswered(t *testing.T) {
	r := &recorder{answer: stdout("0 connected 5\ntimeout 300000\n")}
	got, timeout, err := newHost(r).Probe(t.Context(), []Probe{{Addr: lo(1), Calibrate: true}, {Addr: lo(2)}}, ProbeOptions{Timeout: time.Second, Floor: 300 * time.Millisecond, Factor: 10, Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Result != "connected" || got[1].Err == nil || got[1].Err.Error() != "the host gave no answer for it" || timeout != 300*time.Millisecond {
		t.Errorf("got %+v, timeout %s", got, timeout)
	}
	if want := "9\n1000000 64 300000 10 0\n0 127.0.0.1 1 1\n1 127.0.0.1 2 2\n"; r.calls[0].stdin != want {
		t.Errorf("stdin %q, want %q", r.calls[0].stdin, want)
	}
}

// TestDeadlineOnTheHost: a step that hangs is stopped on the host at its
// deadline, with everything it started, and fails naming the step.
func TestDeadlineOnTheHost(t *testing.T) {
	t.Parallel()
	h := New(newShellSession(t, "sh"), Options{Timeout: time.Second})
	pidFile := t.TempDir() + "/pid"
	// A child that would outlive the step, and a step that never ends (it
	// waits, as a hung iptables or lock would: a busy loop would burn a
	// CPU the other tests share until the deadline).
	script := "sleep 60 & echo $! > " + quote(pidFile) + "; sleep 600"
	start := time.Now()
	_, err := h.run(t.Context(), "read live rules", script, time.Second, nil)
	took := time.Since(start)
	var se *StepError
	if !errors.As(err, &se) || se.Step != "read live rules" || !strings.Contains(err.Error(), "stopped on the host after 1s") {
		t.Fatalf("got %v, want the step stopped on the host", err)
	}
	// A hang guard, not a measure: the step does not end by itself before
	// this does (sleep 600), so ending at all proves the deadline; its
	// error above says which one stopped it.
	if took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// timeout(1) signals its whole process group; the child is gone (its
	// zombie may linger until its parent, killed too, is reaped).
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the step's child %d still runs: %s", pid, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With a password, what sudo leaves unread on stdin (it wanted none: here
// root runs it) is skipped up to the mark, and the script reads its data.
func TestSudoPasswordSkippedWhenUnwanted(t *testing.T) {
	testenv.Root(t)
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("no sudo")
	}
	h := New(newShellSession(t, "sh"), Options{Timeout: 5 * time.Second, Become: true, Password: "not-needed"})
	res, err := h.run(t.Context(), "test", `read -r a; echo "got $a as $(id -u)"`, 5*time.Second, []byte("the data\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(res.Stdout)); got != "got the data as 0" {
		t.Errorf("the script read %q", got)
	}
}

// pinging is a Session whose round trip to its host takes rtt.
type pinging struct {
	Session
	rtt time.Duration
}

func (p pinging) Ping(context.Context) (time.Duration, error) { return p.rtt, nil }

// The round trip is measured only when no probe calibrates.
func TestProbeHint(t *testing.T) {
	for _, tc := range []struct {
		probes []Probe
		want   string
	}{
		{[]Probe{{Addr: lo(1)}}, "1000000 64 300000 10 40000"},
		{[]Probe{{Addr: lo(1), Calibrate: true}, {Addr: lo(2)}}, "1000000 64 300000 10 0"},
	} {
		r := &recorder{answer: stdout("")}
		if _, _, err := newHost(pinging{r, 40 * time.Millisecond}).Probe(t.Context(), tc.probes, ProbeOptions{Timeout: time.Second, Floor: 300 * time.Millisecond, Factor: 10, Batch: 64}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(r.calls[0].stdin, "\n")[1]; got != tc.want {
			t.Errorf("%d probes: header %q, want %q", len(tc.probes), got, tc.want)
		}
	}
}
