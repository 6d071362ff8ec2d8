package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/metrics"
	"github.com/fwpush/fwpush/runner"
)

// metricsFlag is --metrics-file, of run and check: where to write the
// command's results for node_exporter's textfile collector
// (docs/metrics.md).
type metricsFlag struct{ path string }

func (m *metricsFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&m.path, "metrics-file", "", "write Prometheus metrics of the results to `FILE` (replaced atomically), for node_exporter's textfile collector: one file per inventory and command, ending in .prom")
}

// ready refuses a metrics file that could not be written, before any host
// is contacted.
func (m *metricsFlag) ready() error {
	if m.path == "" {
		return nil
	}
	if err := metrics.Ready(m.path); err != nil {
		return &usageError{fmt.Errorf("--metrics-file %s: %w", m.path, err)}
	}
	return nil
}

// writeRun writes a run's metrics and returns the exit status the run
// ends with: code, or exitFailed when the run succeeded but its metrics
// could not be written (a monitoring that silently goes stale is worse
// than a failed cron job).
func (m *metricsFlag) writeRun(inv *inventory.Inventory, start time.Time, took time.Duration, results []runner.HostResult, check *checkReport, code int, stderr io.Writer) int {
	if m.path == "" {
		return code
	}
	r := metrics.Run{Inventory: inv, Start: start, Duration: took, Results: results, OK: code == exitOK}
	if check != nil {
		p := probeCounts(check)
		r.Check = &p
	}
	return m.written(r.Write(m.path), code, stderr)
}

// writeCheck writes a check's metrics and returns the exit status the
// check ends with, as writeRun does.
func (m *metricsFlag) writeCheck(inv *inventory.Inventory, rep *checkReport, stderr io.Writer) int {
	code := rep.exit()
	if m.path == "" {
		return code
	}
	took := time.Duration(rep.Seconds * float64(time.Second))
	c := metrics.Check{Inventory: inv, Start: time.Now().Add(-took), Duration: took, Probes: probeCounts(rep), OK: code == exitOK}
	for _, h := range rep.Hosts {
		hp := metrics.HostProbes{Host: h.Host, Role: h.Role, Mismatch: h.Mismatches, Failed: h.Failed}
		hp.AsExpected = h.Probes - hp.Mismatch - hp.Failed
		c.Hosts = append(c.Hosts, hp)
	}
	return m.written(c.Write(m.path), code, stderr)
}

func (m *metricsFlag) written(err error, code int, stderr io.Writer) int {
	if err == nil {
		return code
	}
	fmt.Fprintf(stderr, "fwpush: --metrics-file: %v\n", err)
	if code == exitOK {
		return exitFailed
	}
	return code
}

func probeCounts(rep *checkReport) metrics.Probes {
	return metrics.Probes{AsExpected: rep.Count.Expected, Mismatch: rep.Count.Mismatches, Failed: rep.Count.Errors, LeftOut: rep.Count.LeftOut}
}
