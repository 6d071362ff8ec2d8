// Package labtest brings labs up for end-to-end tests and takes them down
// when the test ends. Tests that use it need root; without it (or without
// network namespaces) they are skipped.
//
//	l := labtest.Start(t, "../examples/site.toml")
//	out, err := l.Exec(t.Context(), "fwpush", "run", "../examples/site.toml")
//	r := labtest.Probe(t, l, "stranger", "198.18.0.31", 3306)
package labtest

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

// Require skips the test unless this machine can run labs, and under
// go test -short (see testenv).
func Require(t testing.TB) {
	t.Helper()
	testenv.Short(t, "needs a lab")
	if err := lab.CheckRoot(); err != nil {
		t.Skipf("no lab here: %v", err)
	}
}

// Parallel is how many tests of a package that call t.Parallel run at
// once under Main, unless go test's -parallel says: lab tests wait on
// timeouts, probes and the hosts' processes far more than they compute,
// so more of them than go test's default (GOMAXPROCS) keep the CPUs busy.
// Labs come up side by side (see lab.Up); more than 4 at once gains
// nothing on a 2-core machine, whose CPUs a full run keeps busy (about
// 720 s of CPU), and pushes the tests' short SSH timeouts towards flakes.
const Parallel = 4

// Main runs the tests of a package with lab tests, Parallel of them at
// once (at least GOMAXPROCS), and exits as testenv.Main does, after the
// functions given.
func Main(m *testing.M, after ...func()) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(max(Parallel, runtime.GOMAXPROCS(0)))); err != nil {
			panic(err)
		}
	}
	testenv.Main(m, after...)
}

var seq atomic.Int64

// Name returns a lab name no other running test uses: tests of several
// packages run at once, each in a process of its own.
func Name() string {
	return fmt.Sprintf("t%x-%d", os.Getpid(), seq.Add(1))
}

// Start brings up a lab for the inventory at path and takes it down when
// the test and its subtests end, whether they pass or not. Options, if
// given, shape its hosts (root login, sudo, packages, files: see
// lab.Options); without, the hosts are as lab up makes them.
func Start(t testing.TB, path string, opts ...lab.Options) *lab.Lab {
	t.Helper()
	Require(t)
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return StartInventory(t, inv, opts...)
}

// StartInventory is Start for an inventory already loaded.
func StartInventory(t testing.TB, inv *inventory.Inventory, opts ...lab.Options) *lab.Lab {
	t.Helper()
	Require(t)
	var o lab.Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatalf("labtest: %d sets of options, want at most one", len(opts))
	}
	l, err := lab.New(inv, Name(), o)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	t.Cleanup(func() {
		// The test's context is already cancelled when cleanups run; down
		// may wait for other labs' steps under the machine's lock.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("labtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("labtest: %v", err)
	}
	t.Logf("labtest: lab %s of %d hosts up in %s", l.Name, len(l.Hosts), time.Since(start).Round(time.Millisecond))
	return l
}

// Exec runs a command on the lab's controller and returns its stdout,
// failing the test if it fails.
func Exec(t testing.TB, l *lab.Lab, name string, arg ...string) string {
	t.Helper()
	out, err := l.Exec(t.Context(), name, arg...)
	if err != nil {
		t.Fatalf("labtest: controller: %v", err)
	}
	return string(out)
}

// Shell runs a command inside a host and returns its stdout, failing the
// test if it fails.
func Shell(t testing.TB, l *lab.Lab, host, name string, arg ...string) string {
	t.Helper()
	out, err := l.Shell(t.Context(), host, name, arg...)
	if err != nil {
		t.Fatalf("labtest: %s: %v", host, err)
	}
	return string(out)
}

// Reboot reboots a host of the lab (see lab.Lab.Reboot), failing the test
// if it fails, and returns what the boot ran.
func Reboot(t testing.TB, l *lab.Lab, host string) string {
	t.Helper()
	if err := l.Reboot(t.Context(), host); err != nil {
		t.Fatalf("labtest: %v", err)
	}
	log, err := l.BootLog(host)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return log
}

// Rerun returns a command that runs this test binary again on the lab's
// controller (see lab.Lab.Command) with args, and env added to its
// environment; the caller sets its I/O and runs it. See Command.
func Rerun(ctx context.Context, l *lab.Lab, env []string, args ...string) *exec.Cmd {
	return Command(ctx, l, os.Args[0], env, args...)
}

// Command returns a command that runs path on the lab's controller (see
// lab.Lab.Command) with args, and env added to its environment; the
// caller sets its I/O and runs it. A binary built with -race pauses a
// second as it exits, for goroutines still running to report races
// (GORACE's atexit_sleep_ms); in a test binary re-run to stand in for a
// command, the tests that run it wait on every such pause, so it is
// turned off unless GORACE already sets it (a binary built without -race
// ignores GORACE).
func Command(ctx context.Context, l *lab.Lab, path string, env []string, args ...string) *exec.Cmd {
	cmd := l.Command(ctx, path, args...)
	if race := os.Getenv("GORACE"); !strings.Contains(race, "atexit_sleep_ms") {
		cmd.Env = append(cmd.Env, strings.TrimSpace("GORACE="+race+" atexit_sleep_ms=0"))
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// Probe tells whether addr:port is reachable from node from (a host,
// lab.Controller or lab.Stranger), failing the test on an error.
func Probe(t testing.TB, l *lab.Lab, from, addr string, port int) lab.Reachability {
	t.Helper()
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		t.Fatalf("labtest: probe: %v", err)
	}
	r, err := l.Probe(t.Context(), from, ip, port)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return r
}

// Want is a probe and what it must find: see Expect. It is a struct
// without a name of its own, so that tables of them read as the lab's
// probe commands do, without field names.
type Want = struct {
	From string // a host, lab.Controller or lab.Stranger
	Addr string
	Port int
	Want lab.Reachability
}

// Expect makes every probe at once (a filtered one waits out
// lab.ProbeTimeout, which they then share) and reports, as errors of the
// test, those that found something else.
func Expect(t testing.TB, l *lab.Lab, probes []Want) {
	t.Helper()
	got := make([]lab.Reachability, len(probes))
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			ip, err := netip.ParseAddr(p.Addr)
			if err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = l.Probe(t.Context(), p.From, ip, p.Port)
		})
	}
	wg.Wait()
	for i, p := range probes {
		switch {
		case errs[i] != nil:
			t.Errorf("labtest: probe from %s to %s:%d: %v", p.From, p.Addr, p.Port, errs[i])
		case got[i] != p.Want:
			t.Errorf("probe from %s to %s:%d: %s, want %s", p.From, p.Addr, p.Port, got[i], p.Want)
		}
	}
}

// Fleet writes an inventory of n hosts (n >= 2) to a file of the test's and
// returns its path; see FleetTOML.
func Fleet(t testing.TB, n int) string {
	t.Helper()
	path := t.TempDir() + "/fleet.toml"
	if err := os.WriteFile(path, FleetTOML(n), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FleetTOML returns an inventory of n hosts (n >= 2) shaped like the
// tutorial's; see lab.FleetTOML.
func FleetTOML(n int) []byte { return lab.FleetTOML(n) }
