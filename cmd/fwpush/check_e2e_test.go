package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/runner"
)

// checkJSON runs fwpush check --json on the lab's controller and decodes
// its report.
func checkJSON(t *testing.T, l *lab.Lab, args ...string) (int, checkReport) {
	t.Helper()
	code, out, _ := cli(t, l, append([]string{"check", "--json"}, args...)...)
	validateJSON(t, "check", []byte(out))
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check --json: exit %d, %v:\n%s", code, err, out)
	}
	return code, rep
}

// mismatches lists a report's mismatched probes as "CELL: FROM -> TO".
func mismatches(rep checkReport) []string {
	var out []string
	for _, p := range rep.Probes {
		if !p.OK {
			out = append(out, p.Cell+": "+p.From+" -> "+p.To+" "+string(p.Observed)+p.Error)
		}
	}
	return out
}

// TestCheckInLab is the check issue's acceptance on real sshd and real
// iptables: check passes after run, and names the exact cell when a rule
// is removed or added by hand.
func TestCheckInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml")
	l := labtest.Start(t, site)

	// run applies, then verifies by itself.
	code, out, _ := cli(t, l, "run", site)
	if code != exitOK || !strings.Contains(out, "check: 71 probes from 6 hosts and the controller in ") || !strings.Contains(out, "all as expected") {
		t.Fatalf("run: exit %d, want 0 and its check all as expected", code)
	}

	// The check's text, the matrix and each mismatch's line, is
	// docs/check.md's, whose examples TestDocsInLab runs on a lab as
	// these; here its JSON, which names every probe.
	code, rep := checkJSON(t, l, site)
	if code != exitOK || rep.Count.Probes != 71 || rep.Count.Expected != 71 || len(rep.Probes) != 71 {
		t.Fatalf("check --json after run: exit %d, count %+v", code, rep.Count)
	}
	if len(rep.Hosts) != len(siteHosts) {
		t.Errorf("check --json after run: %d hosts probed from, want %d", len(rep.Hosts), len(siteHosts))
	}
	for _, h := range rep.Hosts {
		if h.Status != "probed" || h.Probes == 0 {
			t.Errorf("check --json after run: %s %s after %d probes, want probed", h.Host, h.Status, h.Probes)
		}
	}

	t.Run("a rule removed by hand: a reachable flow becomes filtered", func(t *testing.T) {
		// mysql-1 no longer accepts MySQL from wordpress-1: it is out of
		// the set of app servers.
		labtest.Shell(t, l, "mysql-1", "ipset", "del", "fwp-app-4", "198.18.0.21")
		code, rep := checkJSON(t, l, site)
		if got := mismatches(rep); code != exitFailed || len(got) != 1 || got[0] != "app -> db:3306: wordpress-1 -> mysql-1 filtered" {
			t.Errorf("check: exit %d, mismatches %q; want 1 and only app -> db:3306 from wordpress-1 to mysql-1", code, got)
		}
		// run repairs the drift and its own check proves it.
		if code, out, _ := cli(t, l, "run", site); code != exitOK || !strings.Contains(out, "drift repaired") || !strings.Contains(out, "all as expected") {
			t.Errorf("run after the removal: exit %d, want 0, drift repaired, all as expected", code)
		}
	})

	t.Run("a rule added by hand: a filtered flow becomes reachable", func(t *testing.T) {
		// mysql-2 now accepts SSH from wordpress-2: db does not allow app on 22.
		labtest.Shell(t, l, "mysql-2", "iptables", "-I", "INPUT", "1", "-s", "198.18.0.22/32", "-i", "eth1", "-p", "tcp", "-m", "tcp", "--dport", "22", "-j", "ACCEPT")
		code, rep := checkJSON(t, l, site)
		if got := mismatches(rep); code != exitFailed || len(got) != 1 || got[0] != "app -> db:22: wordpress-2 -> mysql-2 reachable" {
			t.Errorf("check: exit %d, mismatches %q; want 1 and only app -> db:22 from wordpress-2 to mysql-2", code, got)
		}
		// run --no-verify repairs without probing; check then passes.
		code, out, _ := cli(t, l, "run", "--no-verify", site)
		if code != exitOK || strings.Contains(out, "check:") {
			t.Errorf("run --no-verify: exit %d, want 0 and no check", code)
		}
		if code, _, _ := cli(t, l, "check", site); code != exitOK {
			t.Errorf("check after the repair: exit %d, want 0", code)
		}
	})

	t.Run("run --json keeps stdout one JSON document", func(t *testing.T) {
		// Drift to repair, so that the run changes rules and checks.
		labtest.Shell(t, l, "mysql-2", "iptables", "-I", "INPUT", "1", "-p", "tcp", "-m", "tcp", "--dport", "9", "-j", "ACCEPT")
		code, out, errs := cli(t, l, "run", "--json", site)
		validateJSON(t, "run", []byte(out))
		var doc runReport
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitOK {
			t.Errorf("run --json: exit %d, %v", code, err)
		}
		if doc.Check == nil || doc.Check.ExitCode != exitOK || doc.Check.Count.Expected == 0 || errs != "" {
			t.Errorf("run --json: its check belongs in the document (got %+v), and nothing on stderr (got %q)", doc.Check, errs)
		}
	})

	t.Run("a run that changes nothing checks nothing", func(t *testing.T) {
		code, out, errs := cli(t, l, "run", site)
		if code != exitOK || strings.Contains(out+errs, "check:") || !strings.Contains(out, "6 unchanged") {
			t.Errorf("run with nothing to change: exit %d, want 0, every host unchanged and no check", code)
		}
	})
}

// TestCheckLargeInLab runs the matrix of examples/large.toml (40 hosts, six
// roles, two bastions, a host on another SSH port) against a lab: sampled,
// bounded in batches of probes, all as expected after run.
func TestCheckLargeInLab(t *testing.T) {
	// web-12 logs in as deploy, a real unprivileged user in the lab, and
	// becomes root with sudo.
	t.Parallel()
	large := example(t, "large.toml")
	l := labtest.Start(t, large)
	if code, _, _ := cli(t, l, "run", "--no-verify", large); code != exitOK {
		t.Fatalf("run: exit %d", code)
	}
	start := time.Now()
	code, rep := checkJSON(t, l, large)
	took := time.Since(start)
	if code != exitOK || rep.Count.Mismatches+rep.Count.Errors != 0 {
		t.Errorf("check: exit %d, count %+v, mismatches %q", code, rep.Count, mismatches(rep))
	}
	// Two sources per role (six roles) and the controller; the bound is a
	// few rounds of probe timeouts, whatever the fleet's size.
	if rep.Count.Hosts != 12 || rep.Count.Probes < 500 {
		t.Errorf("check probed %d times from %d hosts, want the sampled matrix (12 hosts, 500+ probes)", rep.Count.Probes, rep.Count.Hosts)
	}
	// What bounds the check's time whatever the fleet's size, counted,
	// not timed: two sources per role (above) and, from each, at most
	// three hosts of each role (docs/check.md; the controller probes the
	// public side of every host), so that a source's probes of each phase
	// (expected reachable, then filtered) fit in one batch, each batch a
	// probe timeout at most.
	targets := map[[2]string]map[string]bool{} // from, to's role -> to
	batch := map[[2]string]int{}               // from, expected -> probes
	for _, p := range rep.Probes {
		k := [2]string{p.From, p.ToRole}
		if targets[k] == nil {
			targets[k] = map[string]bool{}
		}
		targets[k][p.To] = true
		batch[[2]string{p.From, string(p.Expected)}]++
	}
	for k, to := range targets {
		if k[0] != "controller" && len(to) > 3 {
			t.Errorf("%s probed %d hosts of role %s, want the 3 sampled at most", k[0], len(to), k[1])
		}
	}
	for k, n := range batch {
		if n > runner.DefaultBatch {
			t.Errorf("%s made %d probes expected %s: more than a batch (%d)", k[0], n, k[1], runner.DefaultBatch)
		}
	}
	t.Logf("large: %d probes from %d hosts and the controller in %.1fs (the command's own measure), %s end to end",
		rep.Count.Probes, rep.Count.Hosts, rep.Seconds, took.Round(time.Millisecond))
}
