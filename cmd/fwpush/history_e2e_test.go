package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestHistoryInLab is the history's acceptance on real hosts: a run that
// changes some hosts leaves a line on each host it changed and none on
// the hosts it left unchanged, and fwpush history reads them all back,
// merged in time order, and says which host it could not read.
func TestHistoryInLab(t *testing.T) {
	t.Parallel()
	site := shortSite(t, "3s", "10s")
	l := labtest.Start(t, site)
	inv, err := inventory.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	hostHistory := func(host string) []history.Entry {
		t.Helper()
		out := labtest.Shell(t, l, host, "sh", "-c", "cat "+history.Path+" 2>/dev/null || true")
		entries, bad := history.Parse(host, []byte(out))
		if bad > 0 {
			t.Errorf("%s: %d lines of its history do not parse:\n%s", host, bad, out)
		}
		return entries
	}

	if code, _, _ := cli(t, l, "run", "--no-verify", site); code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}
	for _, h := range inv.Hosts {
		e := hostHistory(h.Name)
		applied := strings.TrimSpace(labtest.Shell(t, l, h.Name, "cat", "/var/lib/fwpush/applied"))
		if len(e) != 1 || e[0].Outcome != history.Applied || e[0].Host != h.Name || !strings.Contains(e[0].Who, "@") ||
			e[0].Version == "" || e[0].Inventory != inv.Digest() || e[0].Policy != applied || e[0].Added == 0 {
			t.Errorf("%s after the first run: %+v; want one line, applied, of this run and policy %s", h.Name, e, applied)
		}
	}

	// mysql-2 changed by hand: the next run repairs it, and leaves every
	// other host, and its history, alone.
	labtest.Shell(t, l, "mysql-2", "iptables", "-I", "INPUT", "1", "-s", "198.51.100.7/32", "-j", "ACCEPT")
	if code, out, _ := cli(t, l, "run", "--no-verify", site); code != exitOK || !regexp.MustCompile(`(?m)^\s*mysql-2 +db +drift repaired `).MatchString(out) {
		t.Fatalf("second run: exit %d, want mysql-2 repaired:\n%s", code, out)
	}
	for _, h := range inv.Hosts {
		e := hostHistory(h.Name)
		want := []string{history.Applied}
		if h.Name == "mysql-2" {
			want = append(want, history.DriftRepaired)
		}
		var got []string
		for _, x := range e {
			got = append(got, x.Outcome)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s after the second run: %v, want %v", h.Name, got, want)
		}
		if h.Name == "mysql-2" && len(e) == 2 && (e[1].Removed != 1 || e[1].Added != 0 || e[1].Time.Before(e[0].Time)) {
			t.Errorf("mysql-2's repair: %+v; want 1 rule removed, after the first", e[1])
		}
	}

	// fwpush history: all seven changes, in time order, the repair last
	// (or tied for last: lines are dated to the second, and the first
	// run's last apply, the tunnel's, may share the repair's second).
	code, out, errs := cli(t, l, "history", "--json", site)
	if code != exitOK {
		t.Fatalf("history --json: exit %d: %s", code, errs)
	}
	var merged []history.Entry
	for line := range strings.Lines(out) {
		if err := schemaErr(t, []byte(line)); err != nil {
			t.Errorf("history --json: %v\n%s", err, line)
		}
		var e history.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("history --json: %v: %s", err, line)
		}
		merged = append(merged, e)
	}
	repair := slices.IndexFunc(merged, func(e history.Entry) bool { return e.Host == "mysql-2" && e.Outcome == history.DriftRepaired })
	if len(merged) != 7 || repair < 0 || !merged[repair].Time.Equal(merged[6].Time) ||
		!slices.IsSortedFunc(merged, func(a, b history.Entry) int { return a.Time.Compare(b.Time) }) {
		t.Errorf("history --json: %+v; want the 7 changes in time order, mysql-2's repair last", merged)
	}
	code, out, _ = cli(t, l, "history", "-l", "mysql-2", "--last", "1", site)
	if code != exitOK || !regexp.MustCompile(`(?m)^\s*\S+Z +mysql-2 +drift_repaired +\S+@\S+ +\+0 -1 +`+history.Short(inv.Digest())+`\s*$`).MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Errorf("history -l mysql-2 --last 1: exit %d:\n%s", code, out)
	}

	// A saved plan's apply records its change too.
	labtest.Shell(t, l, "mysql-1", "iptables", "-I", "INPUT", "1", "-s", "198.51.100.8/32", "-j", "ACCEPT")
	planPath := filepath.Join(t.TempDir(), "site.plan")
	if code, _, _ := cli(t, l, "plan", "-o", planPath, site); code != exitChanges {
		t.Fatalf("plan: exit %d, want %d", code, exitChanges)
	}
	if code, _, _ := cli(t, l, "apply", "--no-verify", planPath); code != exitOK {
		t.Fatalf("apply: exit %d", code)
	}
	if e := hostHistory("mysql-1"); len(e) != 2 || e[1].Outcome != history.DriftRepaired || e[1].Inventory != inv.Digest() || e[1].Version == "" || e[1].Removed != 1 {
		t.Errorf("mysql-1 after the plan's apply: %+v; want a second line, drift repaired", e)
	}

	// A host down: the others' changes, and the host named, exit 1.
	labtest.Shell(t, l, "wordpress-2", "ip", "link", "set", "eth1", "down")
	t.Cleanup(func() { _, _ = l.Shell(context.Background(), "wordpress-2", "ip", "link", "set", "eth1", "up") })
	code, out, _ = cli(t, l, "history", site)
	if code != exitFailed || strings.Count(out, " applied ") != 5 || !strings.Contains(out, "error: unreachable: host wordpress-2: ") {
		t.Errorf("history with wordpress-2 down: exit %d:\n%s\nwant 1, the other hosts' lines, and wordpress-2 unreachable", code, out)
	}
}
