package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
)

// sites is the example inventory with two sites: east (bastion-e1,
// bastion-e2, www-1, app-1, app-2) and west (bastion-w1, db-1, db-2).
func sites(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// parsed is a metrics file as Prometheus reads it: each series, named with
// its sorted labels, and its value.
type parsed struct {
	values map[string]float64
	types  map[string]dto.MetricType
}

// Read parses the file at path with Prometheus' own text parser (names
// checked as node_exporter checks them) and fails on a series written
// twice.
func read(t *testing.T, path string) parsed {
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
	out := parsed{values: map[string]float64{}, types: map[string]dto.MetricType{}}
	for name, fam := range fams {
		out.types[name] = fam.GetType()
		if fam.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range fam.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			key := name + "{" + strings.Join(ls, ",") + "}"
			if _, dup := out.values[key]; dup {
				t.Errorf("%s is written twice", key)
			}
			out.values[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			if m.TimestampMs != nil {
				t.Errorf("%s has a timestamp: the textfile collector refuses them", key)
			}
		}
	}
	return out
}

// get is one series' value; the test fails when it is not there.
func (p parsed) get(t *testing.T, key string) float64 {
	t.Helper()
	v, ok := p.values[key]
	if !ok {
		t.Errorf("no series %s", key)
	}
	return v
}

// results is a run with one host down, one whose rules were changed by
// hand, one applied and the others unchanged.
func results() []runner.HostResult {
	var rs []runner.HostResult
	for _, h := range []struct{ name, role string }{{"app-1", "app"}, {"app-2", "app"}, {"bastion-e1", "tunnel"}, {"db-1", "db"}, {"db-2", "db"}} {
		rs = append(rs, runner.HostResult{Host: h.name, Role: h.role, Status: runner.Unchanged, Persisted: true, Duration: 300 * time.Millisecond})
	}
	rs[0].Status, rs[0].Persisted, rs[0].Err = runner.Unreachable, false, errors.New("host app-1: connect: i/o timeout")
	rs[3].Status, rs[3].Added, rs[3].Removed, rs[3].Duration = runner.DriftRepaired, 0, 1, 1500*time.Millisecond
	rs[4].Status, rs[4].Added, rs[4].Removed = runner.Applied, 2, 1
	return rs
}

func TestRunMetrics(t *testing.T) {
	inv := sites(t)
	path := filepath.Join(t.TempDir(), "fwpush-sites.prom")
	first := time.Unix(1767225600, 0) // 2026-01-01
	ok := Run{Inventory: inv, Start: first, Duration: 2 * time.Second, Results: results(), OK: true}
	for i := range ok.Results {
		ok.Results[i].Status = runner.Unchanged // all hosts well
	}
	if err := ok.Write(path); err != nil {
		t.Fatal(err)
	}
	m := read(t, path)
	run := `{command=run,inventory=sites}`
	if got := m.get(t, "fwpush_last_success_timestamp_seconds"+run); got != 1767225600 {
		t.Errorf("last success after a success: %v", got)
	}

	// The next run: app-1 down, db-1 repaired, db-2 changed; not a
	// success, so the last success stays the first run's.
	second := first.Add(15 * time.Minute)
	failed := Run{Inventory: inv, Start: second, Duration: 2500 * time.Millisecond, Results: results(),
		Check: &Probes{AsExpected: 10, Mismatch: 1, Failed: 0, LeftOut: 4}}
	if err := failed.Write(path); err != nil {
		t.Fatal(err)
	}
	m = read(t, path)
	want := map[string]float64{
		"fwpush_start_timestamp_seconds" + run:                            float64(second.Unix()),
		"fwpush_duration_seconds" + run:                                   2.5,
		"fwpush_success" + run:                                            0,
		"fwpush_last_success_timestamp_seconds" + run:                     1767225600,
		"fwpush_drift_repaired_total" + run:                               1,
		`fwpush_hosts{command=run,inventory=sites,status=unchanged}`:      2,
		`fwpush_hosts{command=run,inventory=sites,status=unreachable}`:    1,
		`fwpush_hosts{command=run,inventory=sites,status=drift_repaired}`: 1,
		`fwpush_hosts{command=run,inventory=sites,status=applied}`:        1,
		`fwpush_hosts{command=run,inventory=sites,status=failed}`:         0,
		`fwpush_probes{command=run,inventory=sites,verdict=as_expected}`:  10,
		`fwpush_probes{command=run,inventory=sites,verdict=mismatch}`:     1,
		`fwpush_probes{command=run,inventory=sites,verdict=failed}`:       0,
		`fwpush_probes{command=run,inventory=sites,verdict=left_out}`:     4,

		`fwpush_host_status{host=app-1,inventory=sites,role=app,site=east,status=unreachable}`:     1,
		`fwpush_host_status{host=app-1,inventory=sites,role=app,site=east,status=unchanged}`:       0,
		`fwpush_host_status{host=db-1,inventory=sites,role=db,site=west,status=drift_repaired}`:    1,
		`fwpush_host_status{host=db-1,inventory=sites,role=db,site=west,status=applied}`:           0,
		`fwpush_host_status{host=db-2,inventory=sites,role=db,site=west,status=applied}`:           1,
		`fwpush_host_rules_added{host=db-2,inventory=sites,role=db,site=west}`:                     2,
		`fwpush_host_rules_removed{host=db-2,inventory=sites,role=db,site=west}`:                   1,
		`fwpush_host_rules_removed{host=db-1,inventory=sites,role=db,site=west}`:                   1,
		`fwpush_host_duration_seconds{host=db-1,inventory=sites,role=db,site=west}`:                1.5,
		`fwpush_host_persisted{host=app-1,inventory=sites,role=app,site=east}`:                     0,
		`fwpush_host_persisted{host=bastion-e1,inventory=sites,role=tunnel,site=east}`:             1,
		`fwpush_host_status{host=bastion-e1,inventory=sites,role=tunnel,site=east,status=skipped}`: 0,
	}
	for k, v := range want {
		if got := m.get(t, k); got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	// Every status is listed for every host, exactly one of them 1.
	for _, h := range []string{"app-1", "app-2", "bastion-e1", "db-1", "db-2"} {
		n, sum := 0, 0.0
		for k, v := range m.values {
			if strings.HasPrefix(k, "fwpush_host_status{host="+h+",") {
				n++
				sum += v
			}
		}
		if n != len(runner.Statuses) || sum != 1 {
			t.Errorf("%s: %d status series summing to %v, want %d summing to 1", h, n, sum, len(runner.Statuses))
		}
	}
	for name, typ := range m.types {
		wantType := dto.MetricType_GAUGE
		if strings.HasSuffix(name, "_total") {
			wantType = dto.MetricType_COUNTER
		}
		if typ != wantType || !strings.HasPrefix(name, "fwpush_") {
			t.Errorf("%s is a %s: want the fwpush_ prefix, and _total only on counters", name, typ)
		}
	}

	// A third run, a success with a repair: the counter keeps counting.
	third := Run{Inventory: inv, Start: second.Add(15 * time.Minute), Results: results()[3:4], OK: true}
	if err := third.Write(path); err != nil {
		t.Fatal(err)
	}
	m = read(t, path)
	if got := m.get(t, "fwpush_drift_repaired_total"+run); got != 2 {
		t.Errorf("drift repaired over three runs: %v, want 2", got)
	}
	if got := m.get(t, "fwpush_last_success_timestamp_seconds"+run); got != float64(third.Start.Unix()) {
		t.Errorf("last success: %v, want the third run's start", got)
	}
	if _, ok := m.values[`fwpush_probes{command=run,inventory=sites,verdict=mismatch}`]; ok {
		t.Error("a run without a check after it writes probes")
	}
}

func TestRunMetricsNeverSucceeded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fwpush.prom")
	r := Run{Inventory: sites(t), Start: time.Unix(1767225600, 0), Results: results()}
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path).get(t, "fwpush_last_success_timestamp_seconds{command=run,inventory=sites}"); got != 0 {
		t.Errorf("last success of an inventory never enforced: %v, want 0 (so that an alert on its age fires)", got)
	}
}

func TestCheckMetrics(t *testing.T) {
	inv := sites(t)
	path := filepath.Join(t.TempDir(), "fwpush-sites-check.prom")
	c := Check{Inventory: inv, Start: time.Unix(1767225600, 0), Duration: 3 * time.Second, OK: true,
		Probes: Probes{AsExpected: 40, LeftOut: 2},
		Hosts:  []HostProbes{{Host: "app-1", Role: "app", AsExpected: 7}, {Host: "db-1", Role: "db", AsExpected: 5}}}
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	c.OK, c.Start = false, c.Start.Add(time.Hour)
	c.Probes = Probes{AsExpected: 38, Mismatch: 1, Failed: 1}
	c.Hosts[1].AsExpected, c.Hosts[1].Mismatch = 4, 1
	if err := c.Write(path); err != nil {
		t.Fatal(err)
	}
	m := read(t, path)
	chk := `{command=check,inventory=sites}`
	want := map[string]float64{
		"fwpush_success" + chk:                                                                0,
		"fwpush_duration_seconds" + chk:                                                       3,
		"fwpush_last_success_timestamp_seconds" + chk:                                         1767225600,
		`fwpush_probes{command=check,inventory=sites,verdict=as_expected}`:                    38,
		`fwpush_probes{command=check,inventory=sites,verdict=mismatch}`:                       1,
		`fwpush_probes{command=check,inventory=sites,verdict=failed}`:                         1,
		`fwpush_probes{command=check,inventory=sites,verdict=left_out}`:                       0,
		`fwpush_host_probes{host=db-1,inventory=sites,role=db,site=west,verdict=mismatch}`:    1,
		`fwpush_host_probes{host=db-1,inventory=sites,role=db,site=west,verdict=as_expected}`: 4,
		`fwpush_host_probes{host=app-1,inventory=sites,role=app,site=east,verdict=failed}`:    0,
	}
	for k, v := range want {
		if got := m.get(t, k); got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for k := range m.values {
		if strings.HasPrefix(k, "fwpush_host_status") || strings.HasPrefix(k, "fwpush_hosts{") {
			t.Errorf("check writes %s, which is run's", k)
		}
	}
}

// The file is replaced whole, readable by the collector's user, with no
// temporary file left beside it; a file fwpush cannot read is neither
// carried over nor replaced.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fwpush.prom")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	r := Run{Inventory: sites(t), Start: time.Unix(1767225600, 0), Results: results(), OK: true}
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 whatever the umask", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"fwpush.prom"}, names); diff != "" {
		t.Errorf("files in the directory (-want +got):\n%s", diff)
	}

	// Another inventory's file: nothing carried over, replaced.
	other := r
	other.Inventory = &inventory.Inventory{Path: "/etc/fwpush/other.toml"}
	other.OK = false
	if err := other.Write(path); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path).get(t, "fwpush_last_success_timestamp_seconds{command=run,inventory=other}"); got != 0 {
		t.Errorf("another inventory's last success was carried over: %v", got)
	}

	foreign := []byte("this is not { a metrics file\n")
	if err := os.WriteFile(path, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Ready(path); err == nil || !strings.Contains(err.Error(), "not a metrics file") {
		t.Errorf("Ready on a foreign file: %v", err)
	}
	if err := r.Write(path); err == nil {
		t.Error("Write replaced a file it could not read")
	}
	if got, _ := os.ReadFile(path); string(got) != string(foreign) {
		t.Errorf("the foreign file was changed to %q", got)
	}
}

func TestReady(t *testing.T) {
	dir := t.TempDir()
	if err := Ready(filepath.Join(dir, "fwpush.prom")); err != nil {
		t.Errorf("a new file in an existing directory: %v", err)
	}
	if err := Ready(filepath.Join(dir, "missing", "fwpush.prom")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file in a missing directory: %v", err)
	}
	if err := Ready(dir); err == nil {
		t.Error("a directory passed as the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Ready left %d files behind", len(entries))
	}
}

func TestName(t *testing.T) {
	for path, want := range map[string]string{"/etc/fwpush/site.toml": "site", "site.toml": "site", "prod.v2.toml": "prod.v2", "fleet": "fleet"} {
		if got := Name(&inventory.Inventory{Path: path}); got != want {
			t.Errorf("Name(%q) = %q, want %q", path, got, want)
		}
	}
}
