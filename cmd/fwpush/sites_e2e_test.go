package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// runJSON runs fwpush run --json on the lab's controller and decodes its
// report.
func runJSON(t *testing.T, l *lab.Lab, args ...string) (int, runReport, string) {
	t.Helper()
	code, out, errs := cli(t, l, append([]string{"run", "--json"}, args...)...)
	validateJSON(t, "run", []byte(out))
	var rep runReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("run --json: exit %d, %v:\n%s", code, err, out)
	}
	return code, rep, errs
}

// statusOf maps a run report's hosts to their status.
func statusOf(rep runReport) map[string]string {
	out := map[string]string{}
	for _, h := range rep.Hosts {
		out[h.Host] = h.Status
	}
	return out
}

// cutLinks takes a host's links down, as a dead server's, and brings them back
// when the test ends if it has not.
func cutLinks(t *testing.T, l *lab.Lab, host string) (restore func()) {
	t.Helper()
	ifaces := []string{"eth0", "eth1"}
	restore = func() {
		for _, i := range ifaces {
			_, _ = l.Shell(context.Background(), host, "ip", "link", "set", i, "up")
		}
	}
	t.Cleanup(restore)
	for _, i := range ifaces {
		labtest.Shell(t, l, host, "ip", "link", "set", i, "down")
	}
	return restore
}

// sitesChanged writes examples/sites.toml with allow entries changed, each
// pair's old for its new, into the test's directory.
func sitesChanged(t *testing.T, sites string, pairs ...string) string {
	t.Helper()
	src, err := os.ReadFile(sites)
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	for i := 0; i < len(pairs); i += 2 {
		changed := strings.Replace(body, pairs[i], pairs[i+1], 1)
		if changed == body {
			t.Fatalf("%s has no %q", sites, pairs[i])
		}
		body = changed
	}
	path := filepath.Join(t.TempDir(), "sites.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSitesInLab is the sites issue's acceptance, on real sshd and real
// iptables: examples/sites.toml as make demo shows site.toml (validate,
// dry run, run, check, run again); a flow between sites reachable over the
// public addresses and filtered from everywhere else; a site whose bastion
// is down fails alone, in one line; and with the first of two bastions
// down, a run goes through the second.
func TestSitesInLab(t *testing.T) {
	t.Parallel()
	sites := example(t, "sites.toml")
	l := labtest.Start(t, sites)
	all := []string{"app-1", "app-2", "bastion-e1", "bastion-e2", "bastion-w1", "db-1", "db-2", "www-1"}

	// make demo's steps.
	if code, out, _ := cli(t, l, "validate", sites); code != exitOK || !strings.Contains(out, "valid: 8 hosts, 4 roles") {
		t.Fatalf("validate: exit %d", code)
	}
	if code, out, _ := cli(t, l, "run", "--dry-run", sites); code != exitChanges || strings.Count(out, "would change") < len(all) {
		t.Fatalf("run --dry-run: exit %d, want %d and every host changing", code, exitChanges)
	}
	code, out, errs := cli(t, l, "run", sites)
	if code != exitOK || strings.Count(out, "applied") < len(all) || !strings.Contains(out, "all as expected") || errs != "" {
		t.Fatalf("run: exit %d, want every host of both sites applied, its check all as expected, nothing on stderr", code)
	}
	code, rep := checkJSON(t, l, sites)
	if code != exitOK || rep.Count.Expected != rep.Count.Probes || rep.Count.Hosts != len(all) {
		t.Fatalf("check: exit %d, count %+v: want every probe as expected, from every host", code, rep.Count)
	}
	cells := map[string]string{}
	for _, c := range rep.Cells {
		cells[c.From+" -> "+c.To] = c.Expected + " " + c.Mark
	}
	for cell, want := range map[string]string{
		"app -> db public:3306":        "reachable ✓", // across sites, over the internet
		"app -> db public6:3306":       "reachable ✓",
		"lb -> db public:3306":         "filtered ✓",
		"controller -> db public:3306": "filtered ✓",
		"tunnel -> tunnel:22":          "reachable ✓", // each bastion of east reaches the other
	} {
		if cells[cell] != want {
			t.Errorf("check cell %s: %q, want %q", cell, cells[cell], want)
		}
	}
	code, runRep, _ := runJSON(t, l, sites)
	if code != exitOK || runRep.Counts["unchanged"] != len(all) {
		t.Fatalf("second run: exit %d, counts %v: want every host unchanged", code, runRep.Counts)
	}

	t.Run("a flow between sites crosses on the public addresses only", func(t *testing.T) {
		tests := []struct {
			from, addr string
			port       int
			want       lab.Reachability
		}{
			{"app-1", "203.0.113.31", 3306, lab.Reachable}, // app in east -> db in west
			{"app-2", "203.0.113.32", 3306, lab.Reachable},
			{"app-1", "2001:db8::31", 3306, lab.Reachable}, // and over IPv6, where both have it
			{lab.Controller, "203.0.113.31", 3306, lab.Filtered},
			{lab.Controller, "2001:db8::31", 3306, lab.Filtered},
			{"www-1", "203.0.113.31", 3306, lab.Filtered},        // a public source not allowed
			{"bastion-w1", "203.0.113.32", 3306, lab.Filtered},   // not even from the same site's public side
			{"app-1", "203.0.113.31", 22, lab.Filtered},          // SSH stays with west's bastion
			{"stranger@west", "198.19.0.31", 3306, lab.Filtered}, // west's other tenants
			{"stranger@west", "198.19.0.31", 22, lab.Filtered},
			{"db-2", "198.19.0.31", 3306, lab.Reachable}, // replication, on west's private network
			{"stranger@east", "198.18.0.21", 22, lab.Filtered},
		}
		// At once: a filtered probe waits lab.ProbeTimeout.
		errs := make([]error, len(tests))
		var wg sync.WaitGroup
		for i, tt := range tests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := l.Probe(t.Context(), tt.from, netip.MustParseAddr(tt.addr), tt.port)
				if err == nil && got != tt.want {
					err = fmt.Errorf("%s, want %s", got, tt.want)
				}
				if err != nil {
					errs[i] = fmt.Errorf("%s -> %s:%d: %w", tt.from, tt.addr, tt.port, err)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	// A change for east, and a shorter SSH timeout: a bastion that is
	// down costs a whole timeout.
	lb8080 := []string{`{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`, `timeout     = "10s"`, `timeout     = "3s"`}
	t.Run("every bastion of a site down: the other site is applied, the site's hosts not tried, in one line", func(t *testing.T) {
		restore := cutLinks(t, l, "bastion-w1")
		changed := sitesChanged(t, sites, lb8080...)
		code, out, errs := cli(t, l, "run", "--no-verify", changed)
		if code != exitFailed {
			t.Errorf("exit %d, want %d", code, exitFailed)
		}
		for _, h := range []string{"app-1", "app-2", "www-1"} {
			if !strings.Contains(out, h+strings.Repeat(" ", 20-len(h))+" applied") {
				t.Errorf("%s is not applied", h)
			}
		}
		if strings.Contains(out, "error:") {
			t.Errorf("a host's error in the report: the site's one line says why")
		}
		if !strings.Contains(out, "8 hosts in ") || !strings.Contains(out, "3 applied") || !strings.Contains(out, "3 not tried") {
			t.Errorf("summary does not say 3 applied and 3 not tried")
		}
		want := "fwpush: site west: unreachable, no host tried: no bastion answers: host bastion-w1: connect to 203.0.113.30:22: "
		if !strings.HasPrefix(errs, want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("stderr %q, want one line: %q...", errs, want)
		}
		code, rep, _ := runJSON(t, l, "--no-verify", changed)
		got := statusOf(rep)
		for _, h := range []string{"bastion-w1", "db-1", "db-2"} {
			if got[h] != "not_tried" {
				t.Errorf("--json: %s is %s, want not_tried", h, got[h])
			}
		}
		if code != exitFailed || len(rep.Sites) != 2 || rep.Sites[1].Site != "west" || rep.Sites[1].Via != "" || len(rep.Sites[1].Skipped) != 1 {
			t.Errorf("--json: exit %d, sites %+v", code, rep.Sites)
		}
		restore()
		if code, rep, _ := runJSON(t, l, changed); code != exitOK || rep.Counts["unchanged"] != len(all) {
			t.Errorf("with west back: exit %d, counts %v, want every host unchanged", code, rep.Counts)
		}
	})

	t.Run("two bastions: with the first down, a run goes through the second", func(t *testing.T) {
		restore := cutLinks(t, l, "bastion-e1")
		changed := sitesChanged(t, sites, append(lb8080, `{ from = "app" },`, `{ from = "app", tcp = [22, 7000, 20000] },`)...)
		code, rep, errs := runJSON(t, l, "--no-verify", changed)
		got := statusOf(rep)
		for _, h := range all {
			want := "unchanged"
			switch h {
			case "app-1", "app-2":
				want = "applied"
			case "bastion-e1":
				want = "unreachable"
			}
			if got[h] != want {
				t.Errorf("%s: %s, want %s", h, got[h], want)
			}
		}
		if code != exitFailed {
			t.Errorf("exit %d, want %d: bastion-e1 is unreachable", code, exitFailed)
		}
		if !strings.HasPrefix(errs, "fwpush: site east: through bastion-e2; bastion-e1 skipped: host bastion-e1: connect to 203.0.113.10:22: ") {
			t.Errorf("stderr does not say which bastion and why: %q", errs)
		}
		if len(rep.Sites) != 2 || rep.Sites[0].Via != "bastion-e2" || len(rep.Sites[0].Skipped) != 1 || rep.Sites[0].Skipped[0].Bastion != "bastion-e1" || rep.Sites[1].Via != "bastion-w1" {
			t.Errorf("--json sites: %+v", rep.Sites)
		}
		// Leaving the dead bastion out, the run succeeds through the second.
		if code, rep, _ := runJSON(t, l, "--limit", "!bastion-e1", changed); code != exitOK || rep.Counts["unchanged"] != len(all)-1 {
			t.Errorf("run --limit !bastion-e1: exit %d, counts %v", code, rep.Counts)
		}
		// OpenSSH from the controller, jumping through the second bastion,
		// reaches every host of east.
		for _, addr := range []string{"198.18.0.11", "198.18.0.21", "198.18.0.22"} {
			out, err := l.Exec(t.Context(), "ssh", "-F", l.SSHConfig, "-J", "203.0.113.12", addr, "hostname")
			if err != nil {
				t.Errorf("ssh -J bastion-e2 %s: %v", addr, err)
			} else {
				t.Logf("ssh -J bastion-e2 %s: %s", addr, strings.TrimSpace(string(out)))
			}
		}
		// --via goes through a bastion whatever the order says.
		if code, rep, errs := runJSON(t, l, "--via", "bastion-e2", "--limit", "!bastion-e1", changed); code != exitOK || rep.Sites[0].Via != "bastion-e2" || !rep.Sites[0].Forced || errs != "" {
			t.Errorf("run --via bastion-e2: exit %d, sites %+v, stderr %q", code, rep.Sites, errs)
		}

		// check passes through the second bastion, leaving out the
		// dead one, and says so.
		code, check := checkJSON(t, l, "--limit", "!bastion-e1", changed)
		if code != exitOK || check.Count.Expected != check.Count.Probes || check.Count.LeftOut == 0 ||
			len(check.LeftOut) != 1 || check.LeftOut[0].Host != "bastion-e1" || check.LeftOut[0].Status != "excluded_by_limit" ||
			len(check.Sites) == 0 || check.Sites[0].Via != "bastion-e2" {
			t.Errorf("check --limit !bastion-e1 with bastion-e1 down: exit %d, counts %+v, left out %+v, sites %+v", code, check.Count, check.LeftOut, check.Sites)
		}
		restore()
		code, check = checkJSON(t, l, changed)
		if code != exitOK || check.Count.Expected != check.Count.Probes {
			t.Errorf("check with bastion-e1 back: exit %d, count %+v", code, check.Count)
		}
		if code, rep, errs := runJSON(t, l, changed); code != exitOK || rep.Sites[0].Via != "bastion-e1" || errs != "" {
			t.Errorf("run with bastion-e1 back: exit %d, sites %+v, stderr %q: want through bastion-e1 again", code, rep.Sites, errs)
		}
	})
}
