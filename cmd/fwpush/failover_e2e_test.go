package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// The faults of the reliability issue's second round, in the lab: a run
// paused after its apply and rolled back by another, a bastion's link cut
// in the middle of a run, with and without a standby.

// runDirs lists the run directories on host (its /run/fwpush/runs), read
// from outside, as a poll must.
func runDirs(t *testing.T, l *lab.Lab, host string) []string {
	t.Helper()
	root, err := l.HostRoot(host)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(root + "/run/fwpush/runs")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// confirmedSince waits until one of hosts has a run, not among before,
// whose outcome is confirmed: a host applied and confirmed by the run
// under way.
func confirmedSince(t *testing.T, l *lab.Lab, hosts []string, before map[string][]string) string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, h := range hosts {
			root, err := l.HostRoot(h)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range runDirs(t, l, h) {
				if slices.Contains(before[h], d) {
					continue
				}
				if o, _ := os.ReadFile(root + "/run/fwpush/runs/" + d + "/outcome"); strings.HasPrefix(string(o), "confirmed") {
					return h
				}
			}
		}
	}
	t.Fatal("no host was applied within two minutes")
	return ""
}

// applying waits until one of the hosts of before has a run directory not
// among its before: a run's apply under way there. It returns the host.
func applying(t *testing.T, l *lab.Lab, before map[string][]string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for h, was := range before {
			if slices.ContainsFunc(runDirs(t, l, h), func(d string) bool { return !slices.Contains(was, d) }) {
				return h
			}
		}
	}
	t.Fatal("no apply began within a minute")
	return ""
}

// between is how a report gives a guard's time it could only guess (the
// apply's answer, which gives the host's, lost).
var between = regexp.MustCompile(`itself between (\d\d:\d\d:\d\d) and (\d\d:\d\d:\d\d) \(this machine's clock`)

// guardTimeGiven checks the time msg gives for host's guard: the one the
// host keeps (its runs' fire_at), by its clock; or, when the apply's
// answer was lost, a range of this machine's clock (the lab's hosts share
// it) that holds it.
func guardTimeGiven(t *testing.T, l *lab.Lab, host, msg string) {
	t.Helper()
	root, err := l.HostRoot(host)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(root + "/run/fwpush/runs/*/fire_at")
	var fire []time.Time
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			fire = append(fire, time.Unix(n, 0))
			if strings.Contains(msg, "at "+time.Unix(n, 0).Format("15:04:05")+" (the host's clock)") {
				return
			}
		}
	}
	if m := between.FindStringSubmatch(msg); m != nil {
		for _, f := range fire {
			if c := f.Format("15:04:05"); m[1] <= c && c <= m[2] {
				return
			}
		}
	}
	t.Errorf("%s: %q does not give the guard's time the host keeps (%v)", host, msg, fire)
}

// reportOf decodes a run --json report.
func reportOf(t *testing.T, out string) runReport {
	t.Helper()
	var rep runReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("the report is not one JSON document: %v\n%s", err, out)
	}
	return rep
}

// A site's standby bastion takes over in the middle of a run: with the
// first bastion of east cut once a host is applied, the hosts left are
// applied through the second, and so is the second itself; the first is
// unreachable with its own error; no good apply is rolled back.
func TestReliabilityFailover(t *testing.T) {
	t.Parallel()
	sites := sitesChanged(t, example(t, "sites.toml"),
		`timeout     = "10s"`, "timeout     = \"3s\"\nrollback_after = \"40s\"",
		"parallel    = 20", "parallel    = 1")
	l := labtest.Start(t, sites)
	if code, _, _ := cli(t, l, "run", "--no-verify", sites); code != exitOK {
		t.Fatalf("the first run: exit %d", code)
	}
	east := []string{"app-1", "app-2", "www-1", "bastion-e1", "bastion-e2"}
	before := map[string][]string{}
	for _, h := range east {
		// Something to change on every host of east.
		labtest.Shell(t, l, h, "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		before[h] = runDirs(t, l, h)
	}
	cmd, out, errb := startCLI(t, l, "run", "--json", "--no-verify", "--limit", "east", sites)
	first := confirmedSince(t, l, east, before)
	cutLinks(t, l, "bastion-e1")
	err := cmd.Wait()
	t.Logf("bastion-e1 cut once %s was applied; the run: %v\n%s%s", first, err, out, errb)
	rep := reportOf(t, out.String())
	for _, h := range rep.Hosts {
		switch {
		case h.Host == "bastion-e1":
			// Its own error: reached, as any host, through the standby.
			if h.Status != "unreachable" || !strings.Contains(h.Error, "through tunnel bastion-e2") {
				t.Errorf("bastion-e1: %s (%s), want unreachable through bastion-e2", h.Status, h.Error)
			}
		case h.Status != "drift_repaired":
			t.Errorf("%s: %s (%s), want drift_repaired, through the standby", h.Host, h.Status, h.Error)
		}
	}
	if len(rep.Hosts) != len(east) {
		t.Errorf("%d hosts reported, want %d", len(rep.Hosts), len(east))
	}
	if !strings.Contains(errb.String(), "site east: through bastion-e2; bastion-e1 skipped: lost during the run") {
		t.Errorf("stderr does not say that bastion-e2 took over from bastion-e1, lost during the run")
	}
	for _, h := range east[:3] {
		live, persisted := hostRules(t, l, h)
		if strings.Contains(live, "--dport 9 ") || live != persisted {
			t.Errorf("%s: the policy is not live and persisted:\nlive:\n%s\npersisted:\n%s", h, live, persisted)
		}
	}
}

// Every rollback says who decided it. A run paused (SIGSTOP) in its
// apply, taken for gone by a second run that rolls the host back, says,
// resumed, that it was superseded by that run, not that the policy cut
// SSH; with the tunnel's link cut in the middle of a run, the hosts say
// that the connection to the bastion was lost.
func TestReliabilityCauses(t *testing.T) {
	t.Parallel()
	site := shortSite(t, "3s", "60s")
	l := labtest.Start(t, site)
	if code, _, _ := cli(t, l, "run", "--no-verify", site); code != exitOK {
		t.Fatalf("the first run: exit %d", code)
	}

	t.Run("a paused run rolled back by another says so, resumed", func(t *testing.T) {
		// Run A has another policy for mysql-1 than the fleet has, and
		// run B, from another copy of the inventory, the fleet's: B rolls
		// A's apply back.
		body, _ := os.ReadFile(site)
		other := filepath.Join(t.TempDir(), "a.toml")
		changed := strings.Replace(string(body), `{ from = "db", tcp = [3306] } ]`, `{ from = "db", tcp = [3306, 3307] } ]`, 1)
		if changed == string(body) {
			t.Fatal("examples/site.toml no longer has the db role this test changes")
		}
		if err := os.WriteFile(other, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		copyB := filepath.Join(t.TempDir(), "b.toml")
		if err := os.WriteFile(copyB, body, 0o644); err != nil {
			t.Fatal(err)
		}
		was := runDirs(t, l, "mysql-1")
		a, outA, errA := startCLI(t, l, "run", "--json", "--no-verify", "--limit", "mysql-1", other)
		// Paused as soon as its apply is under way on the host.
		applying(t, l, map[string][]string{"mysql-1": was})
		if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Process.Signal(syscall.SIGCONT) })
		code, outB, errB := cli(t, l, "run", "--no-verify", "--limit", "mysql-1", copyB)
		if code != exitOK {
			t.Errorf("run B: exit %d\n%s%s", code, outB, errB)
		}
		_ = a.Process.Signal(syscall.SIGCONT)
		err := a.Wait()
		t.Logf("run A, resumed: %v\n%s%s", err, outA, errA)
		rep := reportOf(t, outA.String())
		if len(rep.Hosts) != 1 {
			t.Fatalf("run A reports %d hosts", len(rep.Hosts))
		}
		h := rep.Hosts[0]
		if h.Status != "rolled_back" || !strings.Contains(h.Error, "superseded by run root@") || !strings.Contains(h.Error, "took this one for gone") || strings.Contains(h.Error, "cut SSH") {
			t.Errorf("run A: mysql-1 %s (%s); want rolled back, superseded by run B, which took it for gone", h.Status, h.Error)
		}
		live, persisted := hostRules(t, l, "mysql-1")
		if strings.Contains(live, "3307") || live != persisted {
			t.Errorf("mysql-1 does not have the fleet's policy back:\nlive:\n%s\npersisted:\n%s", live, persisted)
		}
	})

	t.Run("the tunnel's link cut mid-run: the hosts say the connection to the bastion was lost", func(t *testing.T) {
		body, _ := os.ReadFile(site)
		serial := filepath.Join(t.TempDir(), "serial.toml")
		if err := os.WriteFile(serial, []byte(strings.Replace(strings.Replace(string(body), "parallel    = 20", "parallel    = 1", 1), `rollback_after = "60s"`, `rollback_after = "15s"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		before := map[string][]string{}
		for _, h := range siteHosts {
			labtest.Shell(t, l, h, "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
			before[h] = runDirs(t, l, h)
		}
		cmd, out, errb := startCLI(t, l, "run", "--json", "--no-verify", serial)
		first := confirmedSince(t, l, siteHosts, before)
		// The next host's apply under way, fwpush paused a moment, the
		// link cut: that host's confirm can only go through the bastion.
		for _, h := range siteHosts {
			before[h] = runDirs(t, l, h)
		}
		inFlight := applying(t, l, before)
		if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		restore := cutLinks(t, l, "tunnel-1")
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		restore()
		t.Logf("%s applied, tunnel-1 cut while %s applied; the run: %v\n%s%s", first, inFlight, err, out, errb)
		rep := reportOf(t, out.String())
		if statusOf(rep)[inFlight] != "unknown" {
			t.Errorf("%s, cut off after its apply: %s, want unknown", inFlight, statusOf(rep)[inFlight])
		}
		for _, h := range rep.Hosts {
			if strings.Contains(h.Error, "cut SSH") {
				t.Errorf("%s: %s (%s): the policy blamed for the bastion's link", h.Host, h.Status, h.Error)
			}
			switch h.Status {
			case "drift_repaired":
			case "unknown", "rolled_back":
				if !strings.Contains(h.Error, "the connection to bastion tunnel-1 was lost") {
					t.Errorf("%s: %s (%s), want the connection to tunnel-1 named lost", h.Host, h.Status, h.Error)
				}
				guardTimeGiven(t, l, h.Host, h.Error)
			default:
				if !strings.Contains(h.Error, "tunnel") {
					t.Errorf("%s: %s (%s), want the tunnel named", h.Host, h.Status, h.Error)
				}
			}
		}
		if rep.Counts["drift_repaired"] == 0 || rep.Counts["drift_repaired"] == len(siteHosts) {
			t.Errorf("counts %v: want some hosts applied before the cut, not all", rep.Counts)
		}
	})
}
