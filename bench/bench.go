// Package bench measures fwpush side by side with Ansible (its linear
// strategy and Mitogen's) and with a loop of OpenSSH clients, on labs of the
// example fleet at several sizes, and writes the results to BENCHMARKS.md
// with a plot. Its program is bench/cmd/fwbench; `make bench` runs it as
// root. Nothing here asserts a time: the numbers are reported, not judged.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fwpush/fwpush/lab"
)

// Tool is one of the things compared.
type Tool string

// The tools, in the order they are run and reported.
const (
	FwPush  Tool = "fwpush"
	Ansible Tool = "ansible" // Ansible's linear strategy
	Mitogen Tool = "mitogen" // Ansible with Mitogen's mitogen_linear strategy
	OpenSSH Tool = "openssh" // the floor: one ssh per host over one multiplexed tunnel
)

// Tools lists every tool.
var Tools = []Tool{FwPush, Ansible, Mitogen, OpenSSH}

// ParseTools reads a comma-separated list of tools.
func ParseTools(s string) ([]Tool, error) {
	var out []Tool
	for _, name := range strings.Split(s, ",") {
		t := Tool(strings.TrimSpace(name))
		if !slices.Contains(Tools, t) {
			return nil, fmt.Errorf("unknown tool %q (tools: fwpush, ansible, mitogen, openssh)", name)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Scenario is one measured job.
type Scenario string

// The scenarios, one row each in the tables.
const (
	DryRun     Scenario = "fwpush-dry-run"
	FirstPush  Scenario = "fwpush-first-push"
	Rerun      Scenario = "fwpush-rerun"
	Check      Scenario = "fwpush-check"
	AnsibleRun Scenario = "ansible-linear"
	MitogenRun Scenario = "ansible-mitogen"
	Floor      Scenario = "openssh-floor"
	// FloorDefault is the floor with OpenSSH's own default key exchange
	// (sntrup761x25519 on Debian 12), as a plain ssh loop makes it.
	FloorDefault Scenario = "openssh-floor-default-kex"
)

// scenarios are the rows of the report, in order.
var scenarios = []struct {
	id    Scenario
	tool  Tool
	label string
}{
	{FirstPush, FwPush, "fwpush first push (every host changes)"},
	{Rerun, FwPush, "fwpush unchanged re-run (the cron case)"},
	{DryRun, FwPush, "fwpush `run --dry-run` (every host would change)"},
	{Check, FwPush, "fwpush `check`"},
	{AnsibleRun, Ansible, "Ansible, linear strategy: first push"},
	{MitogenRun, Mitogen, "Ansible + Mitogen (`mitogen_linear`): first push"},
	{Floor, OpenSSH, "OpenSSH floor: `iptables-save` on every host"},
	{FloorDefault, OpenSSH, "OpenSSH floor, with OpenSSH's default key exchange"},
}

func label(s Scenario) string {
	for _, sc := range scenarios {
		if sc.id == s {
			return sc.label
		}
	}
	return string(s)
}

// Config is what to measure and where to write it.
type Config struct {
	Sizes []int  // fleet sizes measured at RTT 0, hosts
	Runs  int    // runs of every scenario at every size, at RTT 0
	Tools []Tool // what to run
	// RTTs are the round-trip times between the controller and the tunnel
	// to measure at, in order: 0 is the lab's own links, any other puts a
	// relay (bench/relay) in the way that every tool dials the tunnel
	// through. None means RTT 0 only.
	RTTs []time.Duration
	// RTTSizes are the fleet sizes measured at the RTTs other than 0,
	// RTTRuns their runs (0: Runs).
	RTTSizes []int
	RTTRuns  int
	// FwPush is the fwpush binary (make build's bin/fwpush).
	FwPush string
	// Launcher is bench/cmd/fwbench-launch built, which starts the
	// programs whose peak memory is measured.
	Launcher string
	// Out is the BENCHMARKS.md to update between its markers; "" for none.
	Out string
	// Plot is the SVG plot to write with gnuplot; "" for none.
	Plot string
	// JSON is where to write every sample as JSON; "" for none.
	JSON string
	// Install lets the bench apt-get install what the tools need
	// (ansible-core, ansible-mitogen, gnuplot-nox) when it is missing.
	Install bool
	// Log receives progress, one line per measurement.
	Log io.Writer
	// ScaleSizes are the fleet sizes of the scale part, which needs no
	// lab: compile and `fwpush validate` of lab.FleetTOML's inventory,
	// ScaleRuns times each, and the size of its policies (see Scale).
	// None: no scale part. Sizes may be empty for the scale part alone.
	ScaleSizes []int
	ScaleRuns  int
	// ServerSizes are the fleet sizes of the servers part, at RTT 0: what
	// each tool costs the lab's servers per host, their CPU time over
	// ServerRuns runs and the processes they fork in one more, counted
	// with strace (see Servers). None: no servers part. A size measured
	// by the labs' part too is measured on the same lab, after it.
	ServerSizes []int
	ServerRuns  int
}

// Run measures everything cfg asks for and writes the reports. The labs it
// brings up are taken down before it returns, even when it fails.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if len(cfg.RTTs) == 0 {
		cfg.RTTs = []time.Duration{0}
	}
	if cfg.RTTRuns == 0 {
		cfg.RTTRuns = cfg.Runs
	}
	if cfg.ScaleRuns == 0 {
		cfg.ScaleRuns = cfg.Runs
	}
	if cfg.ServerRuns == 0 {
		cfg.ServerRuns = cfg.Runs
	}
	sizes := cfg.sizes()
	labs := len(sizes) > 0
	if labs && (cfg.Runs < 1 || cfg.RTTRuns < 1 || len(cfg.Tools) == 0) || !labs && len(cfg.ScaleSizes) == 0 && len(cfg.ServerSizes) == 0 {
		return nil, errors.New("bench: nothing to measure: give at least one size, one run and one tool, or scale sizes, or servers sizes")
	}
	if len(cfg.ServerSizes) > 0 && (cfg.ServerRuns < 1 || len(cfg.Tools) == 0) {
		return nil, errors.New("bench: give the servers part one run and one tool at least")
	}
	for _, n := range cfg.ServerSizes {
		if n < 2 || n > lab.MaxHosts {
			return nil, fmt.Errorf("bench: servers: %d hosts: sizes go from 2 (a tunnel and one host) to %d", n, lab.MaxHosts)
		}
	}
	if len(cfg.ScaleSizes) > 0 && cfg.ScaleRuns < 1 {
		return nil, errors.New("bench: give the scale part one run at least")
	}
	for _, n := range cfg.ScaleSizes {
		if n < 6 {
			return nil, fmt.Errorf("bench: scale: %d hosts: the scale part needs 6 hosts at least (app-1 and db-3)", n)
		}
	}
	for _, n := range sizes {
		if n < 2 || n > lab.MaxHosts {
			return nil, fmt.Errorf("bench: %d hosts: sizes go from 2 (a tunnel and one host) to %d", n, lab.MaxHosts)
		}
	}
	for i, rtt := range cfg.RTTs {
		if rtt < 0 || slices.Contains(cfg.RTTs[:i], rtt) {
			return nil, fmt.Errorf("bench: round-trip time %v: give each once, none below 0", rtt)
		}
	}
	if cfg.FwPush == "" || cfg.Launcher == "" {
		return nil, errors.New("bench: name the fwpush binary and the launcher (bench/cmd/fwbench-launch)")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := lab.CheckRoot(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if labs || len(cfg.ServerSizes) > 0 {
		if err := prerequisites(ctx, cfg); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	work, err := os.MkdirTemp("", "fwbench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(work)

	res := &Results{Date: time.Now().UTC(), Runs: cfg.Runs, Sizes: sizes, RTTs: cfg.RTTs, Tools: cfg.Tools}
	if slices.ContainsFunc(cfg.RTTs, func(d time.Duration) bool { return d > 0 }) {
		res.RTTRuns = cfg.RTTRuns
	}
	res.Machine = describeMachine(ctx, cfg)
	if len(cfg.ScaleSizes) > 0 {
		res.ScaleRuns = cfg.ScaleRuns
		if err := measureScale(ctx, cfg, work, res); err != nil {
			return nil, fmt.Errorf("bench: scale: %w", err)
		}
	}
	if len(cfg.ServerSizes) > 0 {
		res.ServerRuns = cfg.ServerRuns
	}
	for _, n := range cfg.labSizes() {
		if err := measureSize(ctx, cfg, work, n, res); err != nil {
			return nil, fmt.Errorf("bench: %d hosts: %w", n, err)
		}
		if err := checkpoint(cfg, res, n); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := WriteReports(ctx, cfg, res); err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	return res, nil
}

// checkpoint writes to cfg.JSON what was measured up to the lab of n hosts,
// the sizes not measured yet left out, so that a bench stopped midway (an
// Ansible run at 150 hosts can take half an hour on a loaded machine) keeps
// its results for -from-json. The end of the run writes the JSON again.
func checkpoint(cfg Config, res *Results, n int) error {
	if cfg.JSON == "" {
		return nil
	}
	r := *res
	r.Sizes = slices.DeleteFunc(slices.Clone(res.Sizes), func(m int) bool { return m > n })
	return writeJSON(cfg.JSON, &r)
}

// sizes are the fleet sizes measured at any RTT, in increasing order.
func (cfg Config) sizes() []int {
	var out []int
	for _, rtt := range cfg.RTTs {
		out = append(out, cfg.sizesAt(rtt)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// labSizes are the sizes of every lab brought up: those of the labs' part
// and of the servers part, in increasing order.
func (cfg Config) labSizes() []int {
	out := append(cfg.sizes(), cfg.ServerSizes...)
	slices.Sort(out)
	return slices.Compact(out)
}

// sizesAt are the fleet sizes measured at rtt.
func (cfg Config) sizesAt(rtt time.Duration) []int {
	if rtt == 0 {
		return cfg.Sizes
	}
	return cfg.RTTSizes
}

// runsAt is how many runs every scenario gets at rtt.
func (cfg Config) runsAt(rtt time.Duration) int {
	if rtt == 0 {
		return cfg.Runs
	}
	return cfg.RTTRuns
}

// measureSize brings up a lab of n hosts and runs every scenario on it
// at each round-trip time that size is measured at, as many times as the
// RTT's runs say, the tools interleaved so that a slow moment of the
// machine does not fall on one tool only; then the servers part, if it
// measures that size.
func measureSize(ctx context.Context, cfg Config, work string, n int, res *Results) (err error) {
	fmt.Fprintf(cfg.Log, "bench: %d hosts: bringing the lab up\n", n)
	f, err := openFleet(ctx, cfg, work, n)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	res.Parallel = f.parallel
	for _, rtt := range cfg.RTTs {
		if !slices.Contains(cfg.sizesAt(rtt), n) {
			continue
		}
		if err := f.setRTT(ctx, rtt); err != nil {
			return err
		}
		runs := cfg.runsAt(rtt)
		for run := 1; run <= runs; run++ {
			for _, t := range cfg.Tools {
				res.sampleLoad()
				samples, err := f.measure(ctx, t)
				if err != nil {
					return fmt.Errorf("%s, run %d: %s: %w", rttName(rtt), run, t, err)
				}
				for _, s := range samples {
					fmt.Fprintf(cfg.Log, "bench: %d hosts, %s, run %d/%d: %-18s %7.3fs  cpu %6.3fs  rss %5.1f MiB",
						n, rttName(rtt), run, runs, s.scenario, s.Wall.Seconds(), s.CPU.Seconds(), float64(s.MaxRSS)/(1<<20))
					if rtt > 0 {
						fmt.Fprintf(cfg.Log, "  tunnel: %d conn, %d turns", s.TunnelConns, s.TunnelTurns)
					}
					fmt.Fprintln(cfg.Log)
					res.add(s.scenario, n, rtt, s.Sample)
				}
			}
		}
	}
	if slices.Contains(cfg.ServerSizes, n) {
		if err := measureServers(ctx, cfg, f, res); err != nil {
			return fmt.Errorf("servers: %w", err)
		}
	}
	return nil
}
