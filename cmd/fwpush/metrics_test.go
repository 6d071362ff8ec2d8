package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/metrics"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// readMetrics parses a metrics file with Prometheus' text parser and
// returns each series, as `name{label=value,...}` with its labels sorted,
// and its value.
func readMetrics(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			out[name+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

// wantMetrics fails the test for every series of want whose value in got
// differs or that got lacks.
func wantMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
		}
	}
}

// noKey are the flags and the environment that make a run fail before it
// dials anything: no SSH key at all. Every host is then not tried.
func noKey(t *testing.T) []string {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--identity", filepath.Join(dir, "no-such-key"), "--known-hosts", empty, "-F", empty}
}

// The real CLI writes the file on a run that reached no host, carrying
// the last success over from the file it replaces, and keeps its exit
// status.
func TestRunMetricsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwpush-site.prom")
	inv, err := inventory.Load(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	before := metrics.Run{Inventory: inv, Start: time.Unix(1767225600, 0), OK: true,
		Results: []runner.HostResult{{Host: "mysql-2", Role: "db", Status: runner.DriftRepaired}}}
	if err := before.Write(path); err != nil {
		t.Fatal(err)
	}

	code, out, errs := fwpush(t, append(noKey(t), "run", "--json", "--metrics-file", path, exampleSite)...)
	var rep runReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("run --json: %v\n%s", err, out)
	}
	if code != exitFailed || rep.ExitCode != exitFailed || !strings.Contains(errs, "no SSH key") {
		t.Errorf("run with no key: exit %d (JSON %d), stderr %q; want 1", code, rep.ExitCode, errs)
	}
	got := readMetrics(t, path)
	run := "{command=run,inventory=site}"
	wantMetrics(t, got, map[string]float64{
		"fwpush_success" + run:                                      0,
		"fwpush_last_success_timestamp_seconds" + run:               1767225600,
		"fwpush_drift_repaired_total" + run:                         1,
		"fwpush_hosts{command=run,inventory=site,status=not_tried}": 6,
		"fwpush_hosts{command=run,inventory=site,status=unchanged}": 0,
	})
	for _, h := range siteHosts {
		k := "fwpush_host_status{host=" + h + ",inventory=site,role=" + map[string]string{"haproxy-www": "lb", "mysql-1": "db", "mysql-2": "db", "tunnel-1": "tunnel", "wordpress-1": "app", "wordpress-2": "app"}[h] + ",site=,status=not_tried}"
		wantMetrics(t, got, map[string]float64{k: 1})
	}
	if start := got["fwpush_start_timestamp_seconds"+run]; time.Since(time.Unix(int64(start), 0)) > time.Minute {
		t.Errorf("start time %v is not this run's", start)
	}
}

// A metrics file that could not be written is refused before any host is
// contacted, as any invalid input.
func TestMetricsFileRefused(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "notes.prom")
	if err := os.WriteFile(foreign, []byte("not { metrics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing", "fwpush.prom"), dir, foreign} {
		for _, command := range []string{"run", "check"} {
			// No noKey: a run that got past the check would dial the
			// example's tunnel and fail otherwise.
			code, out, errs := fwpush(t, command, "--metrics-file", path, exampleSite)
			if code != exitInvalid || out != "" || !strings.HasPrefix(errs, "fwpush: --metrics-file "+path+": ") {
				t.Errorf("%s --metrics-file %s: exit %d, stdout %q, stderr %q; want exit 3 naming the file", command, path, code, out, errs)
			}
		}
	}
}

// check writes its probes per verdict, and a file that cannot be written
// turns a check that passed into a failed one, and says why.
func TestCheckMetricsFile(t *testing.T) {
	inv, err := inventory.Load(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	rep := siteReport(t, func(e roles.Expectation) (runner.Observation, bool) {
		if e.From == "wordpress-1" && e.To == "mysql-1" && e.Port == 3306 {
			return runner.Observation{Reach: roles.Filtered}, true
		}
		return runner.Observation{}, false
	})
	path := filepath.Join(t.TempDir(), "fwpush-site-check.prom")
	m := metricsFlag{path: path}
	var errs bytes.Buffer
	if code := m.writeCheck(inv, rep, &errs); code != exitFailed || errs.Len() != 0 {
		t.Errorf("a check with a mismatch: exit %d, stderr %q", code, errs.String())
	}
	got := readMetrics(t, path)
	check := "{command=check,inventory=site}"
	wantMetrics(t, got, map[string]float64{
		"fwpush_success" + check:                                                              0,
		"fwpush_last_success_timestamp_seconds" + check:                                       0,
		"fwpush_duration_seconds" + check:                                                     1.234,
		"fwpush_probes{command=check,inventory=site,verdict=as_expected}":                     float64(rep.Count.Probes - 1),
		"fwpush_probes{command=check,inventory=site,verdict=mismatch}":                        1,
		"fwpush_probes{command=check,inventory=site,verdict=failed}":                          0,
		"fwpush_probes{command=check,inventory=site,verdict=left_out}":                        0,
		"fwpush_host_probes{host=wordpress-1,inventory=site,role=app,site=,verdict=mismatch}": 1,
		"fwpush_host_probes{host=mysql-1,inventory=site,role=db,site=,verdict=mismatch}":      0,
	})

	ok := siteReport(t, nil)
	if code := m.writeCheck(inv, ok, &errs); code != exitOK {
		t.Errorf("a check with all as expected: exit %d", code)
	}
	if got := readMetrics(t, path)["fwpush_last_success_timestamp_seconds"+check]; time.Since(time.Unix(int64(got), 0)) > time.Minute {
		t.Errorf("last success %v after a check that passed", got)
	}

	// The directory gone since the check began.
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	if code := m.writeCheck(inv, ok, &errs); code != exitFailed || !strings.HasPrefix(errs.String(), "fwpush: --metrics-file: write "+path+": ") {
		t.Errorf("a check that passed but whose metrics could not be written: exit %d, stderr %q; want 1 and why", code, errs.String())
	}
}
