package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab/labtest"
)

// TestLimitInLab: --limit patterns choose what run pushes and what check
// probes; run --dry-run --no-diff names changes without their diff; -v and
// -vv log on stderr, never on stdout.
func TestLimitInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml")
	l := labtest.Start(t, site)
	const mysql1 = "mysql-*,!mysql-2"

	if code, _, _ := cli(t, l, "run", "--no-verify", site); code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}

	code, out, _ := cli(t, l, "check", "--json", "--limit", mysql1, site)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("check --json --limit: exit %d: %v", code, err)
	}
	if code != exitOK || rep.Count.Probes == 0 || rep.Count.Probes >= 71 || rep.Count.Expected != rep.Count.Probes {
		t.Errorf("check --limit %s: exit %d, count %+v; want some of the 71 probes, all as expected", mysql1, code, rep.Count)
	}
	for _, p := range rep.Probes {
		if p.From != "mysql-1" && p.To != "mysql-1" {
			t.Errorf("check --limit %s probed %s -> %s", mysql1, p.From, p.To)
		}
	}

	for _, h := range []string{"mysql-1", "mysql-2"} {
		labtest.Shell(t, l, h, "iptables", "-I", "INPUT", "1", "-s", "198.51.100.7/32", "-j", "ACCEPT")
	}
	code, out, _ = cli(t, l, "run", "--dry-run", "--no-diff", "--limit", mysql1, site)
	if code != exitChanges || !strings.Contains(out, "mysql-1") || strings.Contains(out, "mysql-2") || strings.Contains(out, "198.51.100.7") {
		t.Errorf("run --dry-run --no-diff --limit %s: exit %d (want %d), want mysql-1 alone, without a diff body", mysql1, code, exitChanges)
	}
	code, out, _ = cli(t, l, "run", "--dry-run", "--limit", mysql1, site)
	if code != exitChanges || !strings.Contains(out, "--- mysql-1 (db): would change") || !strings.Contains(out, "198.51.100.7") {
		t.Errorf("run --dry-run --limit %s: exit %d, want the diff of mysql-1", mysql1, code)
	}

	code, out, errs := cli(t, l, "run", "-v", "--no-verify", "--limit", mysql1, site)
	if code != exitOK || !strings.Contains(out, "drift repaired") || strings.Contains(out, "level=") {
		t.Errorf("run -v --limit %s: exit %d, want mysql-1's drift repaired and no log on stdout", mysql1, code)
	}
	if !strings.Contains(errs, "level=INFO msg=\"applied under guard\" host=mysql-1") || strings.Contains(errs, "level=DEBUG") {
		t.Errorf("run -v: stderr lacks the steps at info level, or shows debug:\n%s", errs)
	}
	if live := labtest.Shell(t, l, "mysql-2", "iptables-save"); !strings.Contains(live, "198.51.100.7") {
		t.Error("mysql-2 was pushed to although --limit left it out")
	}

	code, out, errs = cli(t, l, "run", "-vv", "--dry-run", "--no-diff", "--json", "--limit", "db", site)
	validateJSON(t, "run", []byte(out))
	var doc struct {
		Hosts []struct {
			Host, Status, Diff string
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("run --json: %v", err)
	}
	if code != exitChanges || len(doc.Hosts) != 2 || doc.Hosts[1].Host != "mysql-2" || doc.Hosts[1].Status != "would_change" || doc.Hosts[1].Diff != "" {
		t.Errorf("run --dry-run --no-diff --json --limit db: exit %d, %+v", code, doc.Hosts)
	}
	if !strings.Contains(errs, "level=DEBUG msg=connected host=mysql-2") {
		t.Errorf("run -vv: stderr lacks the connections at debug level:\n%s", errs)
	}
}
