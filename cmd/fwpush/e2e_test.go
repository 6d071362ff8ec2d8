package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestMain lets the test binary stand in for fwpush: with FWPUSH_TEST_CLI
// set it runs the CLI instead of the tests, so that tests can run the
// real commands (inside the lab's controller namespace, or with the hooks
// of signal_test.go) without a separate build. The end-to-end tests run
// at once, each in a lab of its own (see labtest.Main). The tests and the
// commands they run lock inventories in a directory of theirs
// ($FWPUSH_TEST_LOCK_DIR, or main.lockDir in a build of fwpush, see
// builtCLI), removed at the end, with that build.
func TestMain(m *testing.M) {
	lockDir = os.Getenv(testLockDir)
	if os.Getenv("FWPUSH_TEST_CLI") == "1" {
		os.Exit(runWithSignals(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "fwpush-test-locks-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lockDir = dir
	os.Setenv(testLockDir, dir)
	labtest.Main(m, func() { os.RemoveAll(dir) })
}

// testLockDir names the tests' lock directory for the commands they run.
const testLockDir = "FWPUSH_TEST_LOCK_DIR"

// raceCLI are the end-to-end tests (by their top-level name) that run
// fwpush as this test binary even when it is built with -race, so that
// the race detector watches the CLI where its goroutines meet most: the
// main scenario (TestRunInLab), a signal in the middle of a run
// (TestReliabilitySignals), two runs at once
// (TestReliabilityConcurrentRuns), a bastion lost and its standby taking
// over mid-run (TestReliabilityFailover). The others run a normal build
// of fwpush (see builtCLI): a -race CLI costs 0.6-0.8 s of CPU per run, a
// normal one 0.2 s, and cmd/fwpush's tests run it about 140 times. The
// race detector still watches the commands' code in-process in the unit
// tests, and the runner's in runner's end-to-end tests.
var raceCLI = map[string]bool{
	"TestRunInLab":                  true,
	"TestReliabilitySignals":        true,
	"TestReliabilityConcurrentRuns": true,
	"TestReliabilityFailover":       true,
}

// cliPath returns the fwpush that t runs as a command, and the
// environment it needs: a normal build of it (builtCLI) when this test
// binary is built with -race, unless raceCLI names t; otherwise this test
// binary (see TestMain), which is then as fast as a build.
func cliPath(t testing.TB) (path string, env []string) {
	t.Helper()
	top, _, _ := strings.Cut(t.Name(), "/")
	if !raceEnabled || raceCLI[top] {
		return os.Args[0], []string{"FWPUSH_TEST_CLI=1"}
	}
	path, err := builtCLI()
	if err != nil {
		t.Fatal(err)
	}
	return path, nil
}

// builtCLI builds fwpush (this package, as make build does, without
// -race) once (see testenv.Build), with the tests' lock directory built
// in (main.lockDir), and returns its path.
func builtCLI() (string, error) {
	return testenv.Build("fwpush", ".", "-buildvcs=false", "-ldflags", "-X main.lockDir="+lockDir)
}

// cli runs fwpush on the lab's controller, as an operator's laptop would.
func cli(t *testing.T, l *lab.Lab, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliEnv(t, l, nil, args...)
}

// cliEnv is cli with more environment for fwpush.
func cliEnv(t *testing.T, l *lab.Lab, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLI(t, cliCommand(t, l, env, args...), strings.Join(args, " "))
}

// cliCommand returns fwpush (see cliPath) with args on the lab's
// controller, env added to its environment, for the caller to run.
func cliCommand(t *testing.T, l *lab.Lab, env []string, args ...string) *exec.Cmd {
	t.Helper()
	path, need := cliPath(t)
	return labtest.Command(t.Context(), l, path, append(need, env...), args...)
}

// runCLI runs cmd, fwpush, and logs what it printed under what.
func runCLI(t *testing.T, cmd *exec.Cmd, what string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("fwpush %s: %v", what, err)
	}
	t.Logf("fwpush %s: exit %d in %s\n%s%s", what, code, took.Round(time.Millisecond), out.String(), errb.String())
	return code, out.String(), errb.String()
}

// example copies examples/name into the test's directory and returns the
// copy's path. Tests that run at once each have their own: fwpush locks the
// inventory file while it runs (see lockInventory), and runs of one file
// from several tests would wait for each other.
func example(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("../../examples", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var siteHosts = []string{"haproxy-www", "mysql-1", "mysql-2", "tunnel-1", "wordpress-1", "wordpress-2"}

// snapshot is every host's live rules (without packet counters, which
// change as traffic flows) and fwpush's files on it with their times, to
// prove that a run changed nothing.
func snapshot(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, h := range siteHosts {
		snap[h] = labtest.Shell(t, l, h, "sh", "-c",
			"{ iptables-save -t filter; ip6tables-save -t filter; } | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'; "+
				"cat /etc/iptables/rules.v4 /etc/iptables/rules.v6 /var/lib/fwpush/applied /run/fwpush/current 2>/dev/null; "+
				"ls -l --time-style=+%s.%N /etc/iptables /var/lib/fwpush 2>/dev/null; true")
	}
	return snap
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for h, b := range before {
		if after[h] != b {
			t.Errorf("%s changed %s:\nbefore:\n%s\nafter:\n%s", what, h, b, after[h])
		}
	}
}

// TestRunInLab is the runner issue's acceptance, on real sshd and real
// iptables: first run, idempotence, dry-run, drift, one host down.
func TestRunInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml")
	l := labtest.Start(t, site)

	code, out, _ := cli(t, l, "run", site)
	if code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}
	for _, h := range siteHosts {
		if !strings.Contains(out, h) || strings.Count(out, "applied") < len(siteHosts) {
			t.Errorf("first run output does not show %s applied", h)
		}
		files := labtest.Shell(t, l, h, "sh", "-c", "cat /etc/iptables/rules.v4 /etc/iptables/rules.v6")
		if !strings.Contains(files, "# fwpush policy for "+h+" ") || !strings.Contains(files, "IPv6") {
			t.Errorf("%s: persisted rules missing or wrong:\n%s", h, files)
		}
	}

	t.Run("the tutorial's intent holds", func(t *testing.T) {
		labtest.Expect(t, l, []labtest.Want{
			{lab.Controller, "203.0.113.11", 80, lab.Reachable},  // the internet reaches the lb's HTTP
			{lab.Controller, "203.0.113.10", 22, lab.Reachable},  // and the tunnel's SSH
			{lab.Controller, "203.0.113.11", 22, lab.Filtered},   // but not the lb's SSH
			{lab.Controller, "2001:db8::11", 22, lab.Filtered},   // nor over IPv6
			{lab.Controller, "2001:db8::11", 443, lab.Reachable}, // where public_ip6 opens 443
			{"wordpress-1", "198.18.0.31", 3306, lab.Reachable},  // app reaches db:3306
			{"wordpress-1", "198.18.0.31", 22, lab.Filtered},     // but not db's SSH
			{"tunnel-1", "198.18.0.31", 22, lab.Reachable},       // SSH to a private host from the tunnel
			{"wordpress-1", "198.18.0.22", 22, lab.Reachable},    // and from hosts its role whitelists (app for app)
			{"mysql-1", "198.18.0.21", 22, lab.Filtered},         // not from others
			{"haproxy-www", "198.18.0.21", 80, lab.Reachable},    // the lb's derived egress
			{"haproxy-www", "198.18.0.31", 3306, lab.Filtered},   // and nothing else
			{lab.Stranger, "198.18.0.31", 3306, lab.Filtered},    // another tenant reaches nothing
			{lab.Stranger, "198.18.0.21", 22, lab.Filtered},
			{lab.Stranger, "198.18.0.10", 22, lab.Filtered},
		})
	})

	t.Run("second run changes nothing and --quiet prints nothing", func(t *testing.T) {
		before := snapshot(t, l)
		code, out, errs := cli(t, l, "run", "--quiet", site)
		if code != exitOK || out != "" || errs != "" {
			t.Errorf("run --quiet: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		sameSnapshot(t, "a second run", before, snapshot(t, l))
		code, out, _ = cli(t, l, "run", "--json", site)
		var rep runReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
			t.Fatalf("run --json: exit %d, %v", code, err)
		}
		if rep.Counts["unchanged"] != len(siteHosts) {
			t.Errorf("run --json counts %v, want every host unchanged", rep.Counts)
		}
	})

	t.Run("dry-run after an inventory change shows the diff and touches nothing", func(t *testing.T) {
		src, err := os.ReadFile(site)
		if err != nil {
			t.Fatal(err)
		}
		changed := filepath.Join(t.TempDir(), "site.toml")
		body := strings.Replace(string(src), `{ from = "app", tcp = [3306] }`, `{ from = "app", tcp = [3306, 33060] }`, 1)
		if err := os.WriteFile(changed, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, l)
		code, out, _ := cli(t, l, "run", "--dry-run", changed)
		if code != exitChanges {
			t.Errorf("dry-run: exit %d, want %d", code, exitChanges)
		}
		for _, want := range []string{"--- mysql-1 (db): would change", "+-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m multiport --dports 3306,33060 -j ACCEPT"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry-run output lacks %q", want)
			}
		}
		if strings.Contains(out, "wordpress-1 (app): would change") {
			t.Errorf("dry-run shows a change on wordpress-1, whose policy did not change")
		}
		sameSnapshot(t, "a dry run", before, snapshot(t, l))
	})

	t.Run("drift is caught by --check and repaired by run", func(t *testing.T) {
		labtest.Shell(t, l, "mysql-2", "iptables", "-I", "INPUT", "1", "-s", "198.51.100.7/32", "-j", "ACCEPT")
		code, out, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--limit", "db", site)
		if code != exitChanges || !strings.Contains(out, "mysql-2") || strings.Contains(out, "+-A") {
			t.Errorf("--check: exit %d (want %d), naming mysql-2 without a diff body", code, exitChanges)
		}
		code, out, _ = cli(t, l, "run", site)
		if code != exitOK || !strings.Contains(out, "drift repaired") {
			t.Errorf("run after drift: exit %d, want drift repaired", code)
		}
		if live := labtest.Shell(t, l, "mysql-2", "iptables-save"); strings.Contains(live, "198.51.100.7") {
			t.Errorf("the rule added by hand survived the run:\n%s", live)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--no-diff", site); code != exitOK {
			t.Errorf("--check after the repair: exit %d, want 0", code)
		}
	})

	t.Run("host keys are verified: unknown fails, --accept-new records, changed never passes", func(t *testing.T) {
		dir := t.TempDir()
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := cli(t, l, "run", "--dry-run", "--no-diff", "--known-hosts", empty, site)
		if code != exitFailed || !strings.HasPrefix(errs, "fwpush: no host tried: host tunnel-1: host key for 203.0.113.10 is unknown") || !strings.Contains(errs, "SHA256:") ||
			strings.Count(errs, "\n") != 1 || !strings.Contains(out, "6 hosts in ") || !strings.Contains(out, ": 6 not tried\n") || strings.Contains(out, "error:") {
			t.Errorf("unknown keys: exit %d, want one line on stderr with the tunnel's fingerprint, and every host not tried", code)
		}

		learned := filepath.Join(dir, "learned")
		if code, _, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--accept-new", "--known-hosts", learned, site); code != exitOK {
			t.Errorf("--accept-new: exit %d, want 0", code)
		}
		recorded, _ := os.ReadFile(learned)
		if n := strings.Count(string(recorded), "\n"); n != len(siteHosts) {
			t.Errorf("--accept-new recorded %d keys, want %d:\n%s", n, len(siteHosts), recorded)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--known-hosts", learned, site); code != exitOK {
			t.Errorf("with the recorded keys: exit %d, want 0", code)
		}

		// mysql-1's entry now holds mysql-2's key: a changed key.
		lab, err := os.ReadFile(l.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		keyOf := map[string]string{}
		for _, line := range strings.Split(string(lab), "\n") {
			if f := strings.Fields(line); len(f) == 3 {
				keyOf[f[0]] = f[1] + " " + f[2]
			}
		}
		changed := strings.Replace(string(lab), "198.18.0.31 "+keyOf["198.18.0.31"], "198.18.0.31 "+keyOf["198.18.0.32"], 1)
		if changed == string(lab) {
			t.Fatalf("could not find mysql-1's key in %s", l.KnownHosts)
		}
		bad := filepath.Join(dir, "changed")
		if err := os.WriteFile(bad, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ = cli(t, l, "run", "--dry-run", "--no-diff", "--accept-new", "--known-hosts", bad, site)
		if code != exitFailed || !strings.Contains(out, "host mysql-1: connect (host key)") || !strings.Contains(out, "SHA256:") || !strings.Contains(out, "5 unchanged, 1 failed") {
			t.Errorf("a changed key: exit %d, want mysql-1 failed with its fingerprint and the others unchanged", code)
		}
		if after, _ := os.ReadFile(bad); string(after) != changed {
			t.Errorf("--accept-new rewrote a changed key")
		}
	})

	t.Run("one host down: the others succeed and the run names it", func(t *testing.T) {
		labtest.Shell(t, l, "wordpress-2", "ip", "link", "set", "eth1", "down")
		t.Cleanup(func() { _, _ = l.Shell(context.Background(), "wordpress-2", "ip", "link", "set", "eth1", "up") })
		code, out, _ := cli(t, l, "run", site)
		if code != exitFailed {
			t.Errorf("exit %d, want %d", code, exitFailed)
		}
		if !strings.Contains(out, "unreachable") || !strings.Contains(out, "host wordpress-2") {
			t.Errorf("output does not name wordpress-2 as unreachable")
		}
		if strings.Count(out, "unchanged") < len(siteHosts)-1 {
			t.Errorf("the other hosts are not all unchanged")
		}
	})
}
