// Package metrics writes what a run or a check found as a file of
// Prometheus metrics in the text format, for node_exporter's textfile
// collector: each host's last result, and the run's time, duration,
// outcome and the last time it fully succeeded.
//
// A file describes the last run of one command (run or check) on one
// inventory, so that two files in one textfile directory never hold the
// same series. Per-host series carry the labels inventory, site, host and
// role; per-run series inventory and command. A gauge's value is that of
// the last run (a count of hosts is a gauge); the one counter,
// fwpush_drift_repaired_total, and the time of the last success are
// carried over from the file the run replaces.
package metrics

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
)

// The names of the series, and of the ones read back from the file a run
// replaces.
const (
	nameLastSuccess   = "fwpush_last_success_timestamp_seconds"
	nameDriftRepaired = "fwpush_drift_repaired_total"
)

// The verdicts of probes, as the label verdict spells them.
const (
	AsExpected = "as_expected"
	Mismatch   = "mismatch"
	Failed     = "failed"
	LeftOut    = "left_out"
)

// Run is what one `fwpush run` did.
type Run struct {
	// Inventory names the inventory label (its file's name) and each
	// host's site.
	Inventory *inventory.Inventory
	Start     time.Time
	Duration  time.Duration
	// Results are the hosts the run worked on, as runner.Run returns
	// them.
	Results []runner.HostResult
	// Check is what the check after the run found; nil when it made none.
	Check *Probes
	// OK is whether the run fully succeeded (exit status 0): every host
	// is in its policy now, and the check after the run found it so.
	OK bool
}

// Check is what one `fwpush check` found.
type Check struct {
	Inventory *inventory.Inventory
	Start     time.Time
	Duration  time.Duration
	Probes    Probes
	// Hosts are the hosts probed from, with their probes' verdicts.
	Hosts []HostProbes
	// OK is whether every probe found what the inventory says (exit
	// status 0).
	OK bool
}

// Probes counts a check's probes by verdict.
type Probes struct {
	AsExpected, Mismatch, Failed int
	// LeftOut are the probes not made: from or to hosts a run did not
	// finish, or that --limit excludes.
	LeftOut int
}

// HostProbes counts the probes made from one host by verdict.
type HostProbes struct {
	Host, Role                   string
	AsExpected, Mismatch, Failed int
}

// Name is the inventory label of inv: its file's name without the
// extension ("site" for /etc/fwpush/site.toml).
func Name(inv *inventory.Inventory) string {
	base := filepath.Base(inv.Path)
	if base == "." || base == string(filepath.Separator) {
		return ""
	}
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// Write writes r's metrics to path atomically, carrying the time of the
// last success and the drift counter over from the file it replaces.
func (r Run) Write(path string) error {
	inv := Name(r.Inventory)
	prev, err := readPrevious(path, inv, "run")
	if err != nil {
		return err
	}
	var s set
	runLabels := []string{"inventory", inv, "command", "run"}
	common(&s, runLabels, r.Start, r.Duration, r.OK, prev)

	count := map[runner.Status]int{}
	repaired := 0
	for _, res := range r.Results {
		count[res.Status]++
		if res.Status == runner.DriftRepaired {
			repaired++
		}
	}
	for _, st := range runner.Statuses {
		s.gauge("fwpush_hosts", "Hosts the last run left in each status.", float64(count[st]), append(runLabels, "status", st.Key())...)
	}
	s.counter(nameDriftRepaired, "Hosts whose rules, changed by hand, runs have put back into their policy, over every run this file has recorded.",
		prev.driftRepaired+float64(repaired), runLabels...)
	if r.Check != nil {
		r.Check.write(&s, runLabels)
	}

	for _, res := range r.Results {
		hl := hostLabels(r.Inventory, inv, res.Host, res.Role)
		for _, st := range runner.Statuses {
			s.gauge("fwpush_host_status", "The status the last run left each host in: 1 for its status, 0 for the others.", bool01(res.Status == st), append(hl, "status", st.Key())...)
		}
		s.gauge("fwpush_host_rules_added", "Rules (IPv4 and IPv6) the last run added to the host's live rules; with --dry-run, would add.", float64(res.Added), hl...)
		s.gauge("fwpush_host_rules_removed", "Rules (IPv4 and IPv6) the last run removed from the host's live rules; with --dry-run, would remove.", float64(res.Removed), hl...)
		s.gauge("fwpush_host_duration_seconds", "How long the last run took on the host.", res.Duration.Seconds(), hl...)
		s.gauge("fwpush_host_persisted", "1 when the host's saved rules (rules.v4 and rules.v6), which it loads at boot, hold its policy.", bool01(res.Persisted), hl...)
	}
	return writeFile(path, s.families())
}

// Write writes c's metrics to path atomically, carrying the time of the
// last success over from the file it replaces.
func (c Check) Write(path string) error {
	inv := Name(c.Inventory)
	prev, err := readPrevious(path, inv, "check")
	if err != nil {
		return err
	}
	var s set
	runLabels := []string{"inventory", inv, "command", "check"}
	common(&s, runLabels, c.Start, c.Duration, c.OK, prev)
	c.Probes.write(&s, runLabels)
	for _, h := range c.Hosts {
		hl := hostLabels(c.Inventory, inv, h.Host, h.Role)
		for _, v := range []verdictCount{{AsExpected, h.AsExpected}, {Mismatch, h.Mismatch}, {Failed, h.Failed}} {
			s.gauge("fwpush_host_probes", "Probes the last check made from the host, by verdict: as expected, a mismatch, or failed (could not be made).", float64(v.n), append(hl, "verdict", v.verdict)...)
		}
	}
	return writeFile(path, s.families())
}

// common adds the series every command writes: when it started, how long
// it took, whether it fully succeeded, and when it last did.
func common(s *set, labels []string, started time.Time, took time.Duration, ok bool, prev previous) {
	start := float64(started.UnixNano()) / 1e9
	last := prev.lastSuccess
	if ok {
		last = start
	}
	s.gauge("fwpush_start_timestamp_seconds", "When the last run of the command started, in seconds since the epoch.", start, labels...)
	s.gauge("fwpush_duration_seconds", "How long the last run of the command took.", took.Seconds(), labels...)
	s.gauge("fwpush_success", "1 when the last run of the command fully succeeded (exit status 0), else 0.", bool01(ok), labels...)
	s.gauge(nameLastSuccess, "When the last fully successful run of the command started, in seconds since the epoch; 0 if none has.", last, labels...)
}

// write adds the probes by verdict.
func (p Probes) write(s *set, labels []string) {
	for _, v := range []verdictCount{{AsExpected, p.AsExpected}, {Mismatch, p.Mismatch}, {Failed, p.Failed}, {LeftOut, p.LeftOut}} {
		s.gauge("fwpush_probes", "Probes of the last check by verdict: as expected, a mismatch, failed (could not be made), or left out.", float64(v.n), append(labels, "verdict", v.verdict)...)
	}
}

type verdictCount struct {
	verdict string
	n       int
}

// hostLabels are the labels of a host's series.
func hostLabels(inv *inventory.Inventory, name, host, role string) []string {
	site := ""
	if h, ok := inv.Host(host); ok {
		site = h.Site
	}
	return []string{"inventory", name, "site", site, "host", host, "role", role}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// set gathers metric families in the order they are first added.
type set struct {
	order []*dto.MetricFamily
}

func (s *set) gauge(name, help string, v float64, labels ...string) {
	s.add(name, help, dto.MetricType_GAUGE, &dto.Metric{Gauge: &dto.Gauge{Value: &v}}, labels)
}

func (s *set) counter(name, help string, v float64, labels ...string) {
	s.add(name, help, dto.MetricType_COUNTER, &dto.Metric{Counter: &dto.Counter{Value: &v}}, labels)
}

// add adds one series; labels are name, value pairs.
func (s *set) add(name, help string, typ dto.MetricType, m *dto.Metric, labels []string) {
	for i := 0; i+1 < len(labels); i += 2 {
		n, v := labels[i], labels[i+1] // not pointers into labels, which callers append to
		m.Label = append(m.Label, &dto.LabelPair{Name: &n, Value: &v})
	}
	slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	i := slices.IndexFunc(s.order, func(f *dto.MetricFamily) bool { return f.GetName() == name })
	if i < 0 {
		s.order = append(s.order, &dto.MetricFamily{Name: &name, Help: &help, Type: &typ})
		i = len(s.order) - 1
	}
	s.order[i].Metric = append(s.order[i].Metric, m)
}

func (s *set) families() []*dto.MetricFamily { return s.order }
