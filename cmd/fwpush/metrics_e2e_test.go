package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab/labtest"
)

// TestMetricsInLab is the metrics' acceptance on real hosts: the file the
// scheduled command (run --quiet --json --metrics-file) writes after a
// run with one host down and one whose rules were changed by hand, parsed
// with Prometheus' own parser; the last success surviving the failed run;
// and check's probes per verdict.
func TestMetricsInLab(t *testing.T) {
	t.Parallel()
	site := shortSite(t, "3s", "10s")
	l := labtest.Start(t, site)
	dir := t.TempDir()
	runFile, checkFile := filepath.Join(dir, "fwpush-site.prom"), filepath.Join(dir, "fwpush-site-check.prom")
	run := "{command=run,inventory=site}"
	roleOf := map[string]string{"haproxy-www": "lb", "mysql-1": "db", "mysql-2": "db", "tunnel-1": "tunnel", "wordpress-1": "app", "wordpress-2": "app"}
	host := func(name, host string) string {
		return name + "{host=" + host + ",inventory=site,role=" + roleOf[host] + ",site=}"
	}
	status := func(host, status string) string {
		return "fwpush_host_status{host=" + host + ",inventory=site,role=" + roleOf[host] + ",site=,status=" + status + "}"
	}

	before := time.Now()
	if code, _, _ := cli(t, l, "run", "--quiet", "--json", "--metrics-file", runFile, site); code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}
	first := readMetrics(t, runFile)
	success := first["fwpush_last_success_timestamp_seconds"+run]
	if start := first["fwpush_start_timestamp_seconds"+run]; success != start || start < float64(before.Unix()) {
		t.Errorf("after a first run that succeeded: last success %v, start %v (the run began after %d)", success, start, before.Unix())
	}
	want := map[string]float64{"fwpush_success" + run: 1, "fwpush_hosts{command=run,inventory=site,status=applied}": 6}
	for h := range roleOf {
		want[status(h, "applied")] = 1
		want[host("fwpush_host_persisted", h)] = 1
	}
	wantMetrics(t, first, want)
	if added := first[host("fwpush_host_rules_added", "mysql-1")]; added < 5 {
		t.Errorf("the first run added %v rules to mysql-1", added)
	}

	// mysql-2 changed by hand, wordpress-2 down.
	labtest.Shell(t, l, "mysql-2", "iptables", "-I", "INPUT", "1", "-s", "198.51.100.7/32", "-j", "ACCEPT")
	labtest.Shell(t, l, "wordpress-2", "ip", "link", "set", "eth1", "down")
	t.Cleanup(func() { _, _ = l.Shell(context.Background(), "wordpress-2", "ip", "link", "set", "eth1", "up") })
	if code, _, _ := cli(t, l, "run", "--quiet", "--json", "--metrics-file", runFile, site); code != exitFailed {
		t.Errorf("run with wordpress-2 down: exit %d, want 1", code)
	}
	second := readMetrics(t, runFile)
	wantMetrics(t, second, map[string]float64{
		"fwpush_success" + run:                                           0,
		"fwpush_last_success_timestamp_seconds" + run:                    success,
		"fwpush_drift_repaired_total" + run:                              1,
		"fwpush_hosts{command=run,inventory=site,status=unchanged}":      4,
		"fwpush_hosts{command=run,inventory=site,status=drift_repaired}": 1,
		"fwpush_hosts{command=run,inventory=site,status=unreachable}":    1,
		status("wordpress-2", "unreachable"):                             1,
		status("wordpress-2", "applied"):                                 0,
		status("mysql-2", "drift_repaired"):                              1,
		status("mysql-2", "unchanged"):                                   0,
		status("mysql-1", "unchanged"):                                   1,
		host("fwpush_host_rules_removed", "mysql-2"):                     1,
		host("fwpush_host_rules_added", "mysql-2"):                       0,
		host("fwpush_host_persisted", "mysql-2"):                         1,
		host("fwpush_host_persisted", "wordpress-2"):                     0,
		"fwpush_probes{command=run,inventory=site,verdict=mismatch}":     0,
		"fwpush_probes{command=run,inventory=site,verdict=failed}":       0,
	})
	if left := second["fwpush_probes{command=run,inventory=site,verdict=left_out}"]; left == 0 {
		t.Error("the check after the run left out no probe, with wordpress-2 down")
	}
	if start := second["fwpush_start_timestamp_seconds"+run]; start <= success {
		t.Errorf("the second run's start %v is not after the first's %v", start, success)
	}

	if code, _, _ := cli(t, l, "check", "--limit", "!wordpress-2", "--metrics-file", checkFile, site); code != exitOK {
		t.Errorf("check without wordpress-2: exit %d, want 0", code)
	}
	chk := readMetrics(t, checkFile)
	wantMetrics(t, chk, map[string]float64{
		"fwpush_success{command=check,inventory=site}":                                   1,
		"fwpush_probes{command=check,inventory=site,verdict=mismatch}":                   0,
		"fwpush_probes{command=check,inventory=site,verdict=failed}":                     0,
		"fwpush_host_probes{host=mysql-1,inventory=site,role=db,site=,verdict=mismatch}": 0,
	})
	if chk["fwpush_probes{command=check,inventory=site,verdict=as_expected}"] == 0 || chk["fwpush_probes{command=check,inventory=site,verdict=left_out}"] == 0 ||
		chk["fwpush_host_probes{host=mysql-1,inventory=site,role=db,site=,verdict=as_expected}"] == 0 {
		t.Errorf("check's probes: none as expected, or none left out with wordpress-2 excluded")
	}
	if _, ok := chk[status("mysql-1", "unchanged")]; ok {
		t.Error("check's file holds run's host status")
	}

	// wordpress-2 back: a success again, the counter kept.
	labtest.Shell(t, l, "wordpress-2", "ip", "link", "set", "eth1", "up")
	if code, _, _ := cli(t, l, "run", "--quiet", "--json", "--metrics-file", runFile, site); code != exitOK {
		t.Errorf("run with every host back: exit %d", code)
	}
	third := readMetrics(t, runFile)
	wantMetrics(t, third, map[string]float64{"fwpush_success" + run: 1, "fwpush_drift_repaired_total" + run: 1, status("wordpress-2", "unchanged"): 1})
	if last := third["fwpush_last_success_timestamp_seconds"+run]; last <= success || last != third["fwpush_start_timestamp_seconds"+run] {
		t.Errorf("last success %v after a success, want this run's start", last)
	}
}
