package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/bench"
	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestMain says, under go test -short, how many tests were left out. The
// fwpush the tests build locks in a directory of the test binary's,
// removed at the end (see builds).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fwbench-test-locks-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	locks = dir
	testenv.Main(m, func() { os.RemoveAll(dir) })
}

// locks is the directory where the tests' fwpush locks (see builds).
var locks string

// builds builds fwpush and fwbench-launch once per test binary, for
// TestSmoke and TestScale (see testenv.Build), and returns their paths.
// fwpush, run as root, locks its inventory in /run/fwpush-controller and
// keeps its state in /var/lib/fwpush-controller: a test leaves nothing on
// the machine, so this fwpush locks in locks (main.lockDir, set at link
// time), and keeps its state in the lab's (lab.Command sets
// FWPUSH_STATE_DIR), which goes with it.
func builds(t *testing.T) (fwpush, launcher string) {
	t.Helper()
	fwpush, err := testenv.Build("fwpush", "../../../cmd/fwpush", "-ldflags", "-X main.lockDir="+locks)
	if err == nil {
		launcher, err = testenv.Build("fwbench-launch", "../fwbench-launch")
	}
	if err != nil {
		t.Fatal(err)
	}
	return fwpush, launcher
}

// TestSmoke runs the bench as make bench does, reduced to one lab of 6
// hosts, one run at RTT 0 and one at 40 ms, and fwpush only, with the
// servers part on the same lab (one run, one counted), and checks that it
// measured every fwpush scenario at both and the servers' side, and wrote
// the numbers where they belong. It proves the bench works, not how fast
// anything is; but the processes it counts on an unchanged host are held
// to what runner/remote's budget says.
func TestSmoke(t *testing.T) {
	labtest.Require(t)
	dir := t.TempDir()
	fw, launcher := builds(t)
	md := filepath.Join(dir, "BENCHMARKS.md")
	const head = "# Benchmarks\n\nThe lead's notes, kept.\n\n"
	const foot = "\n## Targets\n\nkept too\n"
	stale := head + bench.BeginMarker + "\nstale numbers\n" + bench.EndMarker + "\n\n" + bench.ServersBeginMarker + "\nstale servers\n" + bench.ServersEndMarker + "\n" + foot
	if err := os.WriteFile(md, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "bench.json")
	var stdout, stderr bytes.Buffer
	leftNothing := watchLocks(t, locks)
	err := run(t.Context(), []string{"-sizes", "6", "-runs", "1", "-rtt", "0,40ms", "-rtt-runs", "1", "-tools", "fwpush", "-servers", "6", "-servers-runs", "1", "-fwpush", fw, "-launcher", launcher,
		"-scale", "", "-out", md, "-plot", "", "-json", js, "-install=false"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("fwbench: %v\nstderr:\n%s", err, stderr.String())
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err != nil || strings.Contains(string(out), fmt.Sprintf("fwp-fwb%x-", os.Getpid())) {
		t.Errorf("the bench left its lab up (%v):\n%s", err, out)
	}
	leftNothing()

	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("bench.json: %v", err)
	}
	scenarios := []bench.Scenario{bench.FirstPush, bench.Rerun, bench.DryRun, bench.Check}
	const rtt = 40 * time.Millisecond
	for _, s := range scenarios {
		for _, at := range []time.Duration{0, rtt} {
			m := res.Get(s, 6, at)
			if m == nil || len(m.Samples) != 1 {
				t.Errorf("%s: want one sample at 6 hosts, RTT %v, got %+v", s, at, m)
				continue
			}
			x := m.Samples[0]
			// The launcher's peak bounds what the bench or nsenter could have
			// left in fwpush's rusage; fwpush, a Go program, needs more.
			if x.Wall <= 0 || x.CPU <= 0 || x.LauncherRSS <= 0 || x.MaxRSS <= x.LauncherRSS {
				t.Errorf("%s, RTT %v: implausible sample %+v", s, at, x)
			}
			if m.Wall.Median != x.Wall.Seconds() {
				t.Errorf("%s, RTT %v: median %v of one sample %v", s, at, m.Wall.Median, x.Wall.Seconds())
			}
			// Through the relay, fwpush's connection to the tunnel waits
			// two round trips for the tunnel's banner alone, and every
			// scenario has at least one exchange on it.
			switch {
			case at == 0 && (x.TunnelConns != 0 || x.TunnelTurns != 0):
				t.Errorf("%s: relay counts at RTT 0: %+v", s, x)
			case at > 0 && (x.TunnelConns < 1 || x.TunnelTurns < 1 || x.Wall < 2*at):
				t.Errorf("%s, RTT %v: the run did not go through the relay: %+v", s, at, x)
			}
		}
	}
	if len(res.Measurements) != 2*len(scenarios) {
		t.Errorf("measured %d scenarios, want %d (fwpush only, at two RTTs)", len(res.Measurements), 2*len(scenarios))
	}

	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	if !strings.HasPrefix(text, head+bench.BeginMarker+"\n") || !strings.Contains(text, bench.EndMarker+"\n\n"+bench.ServersBeginMarker+"\n## Servers' side, per host\n") ||
		!strings.HasSuffix(text, bench.ServersEndMarker+"\n"+foot) || strings.Contains(text, "stale") {
		t.Errorf("BENCHMARKS.md: the text outside the markers changed, or the section was not replaced:\n%s", text)
	}
	// Every fwpush row of the wall-time table holds a median and a range
	// that parse, and the first push's is the one measured.
	row := regexp.MustCompile(`(?m)^\| (fwpush [^|]+) \| ([0-9.]+) \(([0-9.]+)–([0-9.]+)\) \|$`)
	i, j := strings.Index(text, "### Wall time, seconds, RTT 0"), strings.Index(text, "### Wall time, seconds, RTT 40 ms")
	if i < 0 || j < i {
		t.Fatalf("BENCHMARKS.md: no wall times at RTT 0, then at 40 ms:\n%s", text)
	}
	rows := row.FindAllStringSubmatch(text[i:j], -1)
	if len(rows) != len(scenarios) {
		t.Fatalf("BENCHMARKS.md: %d fwpush rows of wall time at RTT 0, want %d:\n%s", len(rows), len(scenarios), text)
	}
	for _, r := range rows {
		for _, cell := range r[2:] {
			if v, err := strconv.ParseFloat(cell, 64); err != nil || v <= 0 {
				t.Errorf("BENCHMARKS.md: %s: %q is not a time", r[1], cell)
			}
		}
		if strings.HasPrefix(r[1], "fwpush first push") {
			v, _ := strconv.ParseFloat(r[2], 64)
			if want := res.Get(bench.FirstPush, 6, 0).Wall.Median; v < want*0.99-0.001 || v > want*1.01+0.001 {
				t.Errorf("BENCHMARKS.md: first push %v s, measured %v s", v, want)
			}
		}
	}
	if !strings.Contains(text, "### Round trips, RTT 40 ms") {
		t.Errorf("BENCHMARKS.md: no round trips at RTT 40 ms:\n%s", text)
	}
	if !strings.Contains(stdout.String(), "### Wall time, seconds") || !strings.Contains(stdout.String(), "## Servers' side, per host") {
		t.Errorf("fwbench printed no tables:\n%s", stdout.String())
	}
	checkServers(t, &res, text)
}

// The processes sshd itself forks for a connection that logs in as root
// (the lab's user), OpenSSH 9.2: the listener's fork that serves the
// connection, and the privilege-separated child that reads the client
// before authentication. After it, a root login has no child of its own:
// the monitor serves the sessions itself (privsep_postauth).
const sshdPerRootLogin = 2

// checkServers checks the servers part of one size, 6 hosts, fwpush only:
// CPU time on every host in both scenarios, processes counted on every
// host, and on the app and db servers of the unchanged re-run exactly
// what runner/remote's TestSetsForks holds fwpush's read of a host with
// sets to (7, the login shell included), plus sshd's own for the one
// connection fwpush makes there: a process more in fwpush's read, or a
// second connection, fails it.
func checkServers(t *testing.T, res *bench.Results, text string) {
	t.Helper()
	if len(res.Servers) != 1 || res.ServerRuns != 1 {
		t.Fatalf("servers part: %d sizes, %d runs; want 1 and 1", len(res.Servers), res.ServerRuns)
	}
	sv := res.Servers[0]
	if sv.Size != 6 || len(sv.Hosts) != 6 || sv.CPUSource == "" {
		t.Fatalf("servers part: %d hosts, %d listed, CPU from %q", sv.Size, len(sv.Hosts), sv.CPUSource)
	}
	byScenario := map[bench.Scenario]*bench.ServerScenario{}
	for _, x := range sv.Scenarios {
		byScenario[x.Scenario] = x
	}
	if len(byScenario) != 2 || byScenario[bench.FirstPush] == nil || byScenario[bench.Rerun] == nil {
		t.Fatalf("servers part: scenarios %v, want fwpush's first push and re-run", sv.Scenarios)
	}
	for sc, x := range byScenario {
		if len(x.CPU) != 1 || len(x.CPU[0]) != 6 || len(x.Procs) != 6 {
			t.Fatalf("%s: %d runs of CPU, %d hosts counted; want 1 run of 6 hosts, 6 counted", sc, len(x.CPU), len(x.Procs))
		}
		for i, h := range sv.Hosts {
			// Every host served fwpush a connection (the tunnel: the
			// controller's) and ran its read at least.
			if x.CPU[0][i] <= 0 || x.Procs[i].Conns < 1 || x.Procs[i].Commands < 1 {
				t.Errorf("%s: host %s: CPU %v, processes %+v", sc, h.Name, x.CPU[0][i], x.Procs[i])
			}
		}
		t.Logf("%s: CPU per host %v, processes per host %+v", sc, x.CPU[0], x.Procs)
	}
	first, rerun := byScenario[bench.FirstPush], byScenario[bench.Rerun]
	procs, ok := bench.UnchangedProcs(res)
	if !ok || len(procs) != 4 {
		t.Fatalf("unchanged app and db servers counted: %v, want 4 (6 hosts: a tunnel, a load balancer, 4 app and db)", procs)
	}
	for _, p := range procs {
		if want := (bench.Procs{Conns: 1, SSHD: sshdPerRootLogin, Commands: 7}); p != want {
			t.Errorf("an unchanged app or db server in the re-run: %+v, want %+v: TestSetsForks's 7 for fwpush's read of a host with sets, "+
				"and sshd's %d for its one connection", p, want, sshdPerRootLogin)
		}
	}
	for i, h := range sv.Hosts {
		if !h.Tunnel && first.Procs[i].Commands <= rerun.Procs[i].Commands {
			t.Errorf("host %s: the first push, which changes it, forked %+v, no more than the re-run's %+v", h.Name, first.Procs[i], rerun.Procs[i])
		}
	}
	if !strings.Contains(text, "7 of fwpush's commands, the same as the 7 that runner/remote's TestSetsForks") {
		t.Errorf("BENCHMARKS.md: no cross-check of the re-run's processes:\n%s", text)
	}
}

// watchLocks notes the lock files fwpush holds in locks, the test
// binary's directory (see TestMain), while the bench runs (a lock goes when
// its run ends), and which of the machine's own directories of locks and
// state exist before. The function it returns, once the bench is done,
// checks that fwpush locked there, and left nothing on the machine: no
// directory of its own that was not there before, and no file of the
// bench's inventory (named after its lock, see lockfile.Name) in one that
// was.
func watchLocks(t *testing.T, locks string) (check func()) {
	t.Helper()
	machine := []string{"/run/fwpush-controller", "/var/lib/fwpush-controller", fmt.Sprintf("/tmp/fwpush-%d", os.Geteuid())}
	existed := map[string]bool{}
	for _, d := range machine {
		_, err := os.Lstat(d)
		existed[d] = err == nil
	}
	stop, done := make(chan struct{}), make(chan struct{})
	// The directory is the test binary's: a lock left there by another
	// test is not one that this bench took.
	before, _ := filepath.Glob(filepath.Join(locks, "fwpush-*.lock"))
	seen := map[string]bool{}
	go func() {
		defer close(done)
		for {
			names, _ := filepath.Glob(filepath.Join(locks, "fwpush-*.lock"))
			for _, n := range names {
				if !slices.Contains(before, n) {
					seen[strings.TrimSuffix(filepath.Base(n), ".lock")] = true
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() {
		t.Helper()
		close(stop)
		<-done
		if len(seen) == 0 {
			t.Errorf("fwpush never locked in the test's directory %s: it locked elsewhere", locks)
		}
		for _, d := range machine {
			if _, err := os.Lstat(d); err == nil && !existed[d] {
				t.Errorf("the bench's fwpush made %s on the machine", d)
			}
			for stem := range seen {
				if left, _ := filepath.Glob(filepath.Join(d, stem+".*")); len(left) > 0 {
					t.Errorf("the bench's fwpush left %v on the machine", left)
				}
			}
		}
	}
}

// TestBadFlags: lists that do not parse are refused before anything is
// measured, naming the flag.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"-rtt", "0,fast"}},
		{[]string{"-rtt", "-60ms"}},
		{[]string{"-rtt-sizes", "6,many"}},
		{[]string{"-sizes", "6,"}},
		{[]string{"-scale", "50,lots"}},
		{[]string{"-servers", "6,fifty"}},
	} {
		var stderr bytes.Buffer
		err := run(t.Context(), tc.args, io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.args[0]+":") {
			t.Errorf("fwbench %q: %v, want an error naming %s", tc.args, err, tc.args[0])
		}
	}
}

// TestScale runs the scale part alone, as fwbench does with no -sizes, at two
// small sizes, and checks that it measured compile and validate at each,
// counted the policies' rules and sets, and rewrote its own section of
// BENCHMARKS.md only, leaving the labs' as it was.
func TestScale(t *testing.T) {
	labtest.Require(t) // root: validate loads the policies in network namespaces
	dir := t.TempDir()
	fw, launcher := builds(t)
	md := filepath.Join(dir, "BENCHMARKS.md")
	labs := bench.BeginMarker + "\nthe labs' numbers, kept\n" + bench.EndMarker + "\n"
	head := "# Benchmarks\n\n" + labs + "\n"
	const foot = "\n## Notes\n\nkept too\n"
	if err := os.WriteFile(md, []byte(head+bench.ScaleBeginMarker+"\nstale\n"+bench.ScaleEndMarker+"\n"+foot), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-sizes", "", "-servers", "", "-scale", "6,12", "-scale-runs", "1", "-fwpush", fw, "-launcher", launcher,
		"-out", md, "-plot", filepath.Join(dir, "bench.svg"), "-json", js, "-install=false"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("fwbench: %v\nstderr:\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("bench.json: %v", err)
	}
	if len(res.Measurements) != 0 || len(res.Scale) != 2 {
		t.Fatalf("measured %d lab scenarios and %d scale sizes, want 0 and 2", len(res.Measurements), len(res.Scale))
	}
	for i, s := range res.Scale {
		if want := []int{6, 12}[i]; s.Hosts != want {
			t.Errorf("scale %d: %d hosts, want %d", i, s.Hosts, want)
		}
		if len(s.Compile) != 1 || len(s.Validate) != 1 {
			t.Fatalf("%d hosts: %d compiles and %d validates, want one each", s.Hosts, len(s.Compile), len(s.Validate))
		}
		c, v := s.Compile[0], s.Validate[0]
		if c.Wall <= 0 || c.MaxRSS <= 0 || v.Wall <= 0 || v.CPU <= 0 || v.MaxRSS <= v.LauncherRSS {
			t.Errorf("%d hosts: implausible samples: compile %+v, validate %+v", s.Hosts, c, v)
		}
		// A new app server changes one member of the db server's set of
		// app servers, and no rule.
		if s.AppRules == 0 || s.AppSets == 0 || s.DB != (bench.Added{MembersAdded: 1}) {
			t.Errorf("%d hosts: app-1 %d rules, %d sets; db-3 when an app server joins: %+v", s.Hosts, s.AppRules, s.AppSets, s.DB)
		}
	}
	if a, b := res.Scale[0], res.Scale[1]; a.AppRulesDigest != b.AppRulesDigest || a.AppMembers >= b.AppMembers {
		t.Errorf("app-1's rules differ between 6 and 12 hosts (%s, %s), or its sets did not grow (%d, %d members)", a.AppRulesDigest, b.AppRulesDigest, a.AppMembers, b.AppMembers)
	}
	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	if !strings.HasPrefix(text, head+bench.ScaleBeginMarker+"\n") || !strings.HasSuffix(text, bench.ScaleEndMarker+"\n"+foot) || strings.Contains(text, "stale") {
		t.Errorf("BENCHMARKS.md: the labs' section or the text around changed, or the scale section was not replaced:\n%s", text)
	}
	for _, want := range []string{"| `fwpush validate`: wall, s |", "| rules (`-A`) in app-1's IPv4 filter table | ", ", identical |", "| an app server added: db-3's sets | 0 made; members +1 −0 | 0 made; members +1 −0 |"} {
		if !strings.Contains(text, want) {
			t.Errorf("BENCHMARKS.md: no %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bench.svg")); err == nil {
		t.Errorf("the scale part alone drew the labs' plot")
	}
}
