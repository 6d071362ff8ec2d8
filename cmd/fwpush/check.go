package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/check"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

type checkFlags struct {
	conn     connFlags
	asJSON   bool
	timeout  time.Duration
	limit    string
	lockWait time.Duration
	metrics  metricsFlag
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check [flags] INVENTORY",
		Short: "Probe the live network and compare it with what the inventory allows",
		Long: `check proves that the fleet's firewalls do what the inventory says. From
the inventory alone it derives a matrix of TCP probes: every allow entry must
be reachable from hosts of its source role, SSH from the tunnel must reach
every host; SSH between other hosts, ports a role opens to others only, and
on public addresses everything but public_tcp must be filtered. Each probe
runs on its source host over SSH (bash's /dev/tcp, nothing to install), or,
for public addresses, from this machine. A connection accepted or refused
means reachable; a timeout means filtered.

Large roles are sampled: probes go from the first 2 hosts of a role (by name)
to the first 3 of another. UDP and CIDR sources are not probed: check says
which allow entries it left out.

--limit keeps the probes from or to the hosts it selects (sampling those
first): host and role names, globs, !exclusions and &intersections, as
Ansible's patterns. A host a !term excludes is left out entirely, no probe
from or to it: '!bastion-1' while that bastion is down.

--metrics-file writes the probes per verdict, per host and in all, and the
time of the last check that found everything as expected, for Prometheus
(see docs/metrics.md).

check waits for a run of the same inventory on this machine to end, at
most --lock-wait; checks run side by side.

Exit status: 0 everything as expected; 1 a mismatch, a probe that could not
be made, or a run held the inventory past --lock-wait; 3 invalid input
(nothing contacted); 128+N signal N stopped it before any probe.`,
		Example: `  fwpush check site.toml
  fwpush check --json site.toml | jq '.probes[] | select(.ok | not)'
  fwpush check --limit 'mysql-*,!mysql-2' site.toml   # only what mysql-1 sends and receives
  fwpush check --timeout 5s site.toml        # slow networks
  fwpush check --metrics-file /var/lib/prometheus/node-exporter/fwpush-site-check.prom site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := loadPlan(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			inv := plan.Inventory
			hosts, err := selectHosts(inv, f.limit)
			if err != nil {
				return err
			}
			if err := f.metrics.ready(); err != nil {
				return err
			}
			unlock, err := lockInventory(cmd.Context(), args[0], true, f.lockWait, func(holder string) {
				if !f.asJSON {
					fmt.Fprintf(cmd.ErrOrStderr(), "fwpush: a run of this inventory is in progress%s; waiting for it (at most %s: --lock-wait)\n", holderOf(holder), f.lockWait)
				}
			})
			if err != nil {
				return err
			}
			defer unlock()
			stdout := cmd.OutOrStdout()
			opts, err := f.conn.options(inv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// Probes run as the login user: no sudo, no password.
			fleet, err := openFleet(inv, opts, "", f.conn.via, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer fleet.Close()
			st := styleFor(stdout)
			prog := newProgress(stdout, st, !f.asJSON && f.conn.verbose == 0)
			rep := verify(cmd.Context(), plan, hosts, fleet, verifyOptions{timeout: f.timeout, logger: opts.Logger, progress: prog, leaveOut: check.Excluded(inv, f.limit)})
			prog.close()
			if err := fleet.Err(""); err != nil {
				rep.Error = err.Error()
			}
			rep.Sites = jsonSites(fleet.Reached())
			rep.ExitCode = f.metrics.writeCheck(inv, rep, cmd.ErrOrStderr())
			if f.asJSON {
				if err := writeJSON(stdout, rep); err != nil {
					return err
				}
				return exitWith(rep.ExitCode)
			}
			rep.writeText(stdout, st, true)
			return exitWith(rep.ExitCode)
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON report on stdout")
	cmd.Flags().DurationVar(&f.timeout, "timeout", runner.DefaultProbeTimeout, "how long a probe waits for an answer before it counts as filtered")
	registerLimit(cmd, &f.limit)
	cmd.Flags().DurationVar(&f.lockWait, "lock-wait", defaultLockWait, lockWaitUsage)
	f.metrics.register(cmd)
	return cmd
}

// verifyAfterRun checks the network after `fwpush run` changed rules, over
// the run's own fleet, on the cells from or to the hosts it changed, and
// returns its report (nil when it made no check). The probes from or to a
// host that the run did not finish (unreachable, failed, rolled back) are
// left out: they would only report the run's failure again, as a firewall
// fault; so are those of the hosts --limit excludes. Unless --json holds
// it, the report is printed short on w: the mismatches, or one line when
// all is as expected (with --quiet, only a failure). When the run changed
// no host's rules there is nothing new to prove, and when it reached no
// host at all its report already says why.
func verifyAfterRun(ctx context.Context, plan *roles.Plan, results []runner.HostResult, fleet runner.Fleet, logger *slog.Logger, w io.Writer, f runFlags) *checkReport {
	inv := plan.Inventory
	var touched []*inventory.Host
	unfinished := check.Excluded(inv, f.limit)
	for _, r := range results {
		switch {
		case r.Status == runner.Applied || r.Status == runner.DriftRepaired:
			h, _ := inv.Host(r.Host)
			touched = append(touched, h)
		case !r.Status.OK():
			unfinished[r.Host] = statusKey(r.Status)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	st := styleFor(w)
	prog := newProgress(w, st, !f.quiet && !f.asJSON && f.conn.verbose == 0)
	rep := verify(ctx, plan, touched, fleet, verifyOptions{timeout: runner.DefaultProbeTimeout, logger: logger, leaveOut: unfinished, progress: prog})
	prog.close()
	if !f.asJSON && (!f.quiet || rep.exit() != exitOK) {
		fmt.Fprintln(w)
		rep.writeText(w, st, false)
	}
	return rep
}

// checkReport is check's --json document (docs/json.md): the report of
// package check, and what the command adds around it.
type checkReport struct {
	Schema    string `json:"schema"`
	Command   string `json:"command"`
	Inventory string `json:"inventory"`
	// Error is a problem of fwpush's own side that kept every host from
	// probing (no usable key, the tunnel down).
	Error string `json:"error,omitempty"`
	// Sites say through which bastion each site was reached, and why the
	// ones before it were skipped.
	Sites []jsonSite `json:"sites,omitempty"`
	*check.Report
	ExitCode int `json:"exit_code"`
}

// verifyOptions shape a check.
type verifyOptions struct {
	timeout time.Duration
	logger  *slog.Logger
	// leaveOut are hosts whose probes, from or to them, are not made, and
	// why: their status in the run, or check.ExcludedStatus.
	leaveOut map[string]string
	progress *progress
}

// verify derives the probes from or to hosts and makes every one over
// fleet. A fleet whose tunnel could not be reached fails the hosts'
// probes; the controller's still run. Each mismatch is explained from
// plan's policies.
func verify(ctx context.Context, plan *roles.Plan, hosts []*inventory.Host, fleet runner.Fleet, o verifyOptions) *checkReport {
	inv := plan.Inventory
	start := time.Now()
	suite := check.NewSuite(inv, hosts, o.leaveOut)
	probes := make([]runner.Probe, len(suite.Matrix.Expectations))
	for i, e := range suite.Matrix.Expectations {
		probes[i].Addr = netip.AddrPortFrom(e.Addr, uint16(e.Port))
		probes[i].Expect = e.Want
		if e.From != roles.Controller {
			probes[i].From, _ = inv.Host(e.From)
		}
	}
	opts := runner.ProbeOptions{Timeout: o.timeout, Logger: o.logger}
	if o.progress != nil {
		o.progress.checking(len(probes))
		opts.OnProbed = o.progress.probed
	}
	obs := runner.RunProbes(ctx, inv, probes, fleet, opts)
	rep := report(inv, suite, obs, time.Since(start))
	rep.Explain(suite, decidedBy(plan))
	return rep
}

// report is the document of the suite's probes, whose observations are
// obs.
func report(inv *inventory.Inventory, suite check.Suite, obs []runner.Observation, took time.Duration) *checkReport {
	verdicts := make([]check.Verdict, len(obs))
	for i, o := range obs {
		var nt *runner.NotTriedError
		verdicts[i] = check.Verdict{Reach: o.Reach, Detail: o.Detail, Err: o.Err, NotTried: errors.As(o.Err, &nt)}
	}
	rep := &checkReport{Schema: schemaVersion, Command: "check", Inventory: inv.Path, Report: suite.Report(verdicts, took)}
	rep.ExitCode = rep.exit()
	return rep
}

// newCheckReport is the document of the probes of m, nothing left out.
func newCheckReport(inv *inventory.Inventory, m roles.Matrix, obs []runner.Observation, took time.Duration) *checkReport {
	return report(inv, check.Suite{Matrix: m}, obs, took)
}

func (r *checkReport) exit() int {
	if !r.OK() {
		return exitFailed
	}
	return exitOK
}

// writeText prints the report: the matrix (when matrix is set), the
// mismatches and failed probes, what was not probed, and a summary line.
func (r *checkReport) writeText(w io.Writer, st style, matrix bool) {
	paint := func(c text.Color, s string) string {
		if !st.color {
			return s
		}
		return c.Sprint(s)
	}
	if matrix {
		r.writeMatrix(w, st.tty, paint)
	}
	if r.Count.Mismatches > 0 {
		fmt.Fprintf(w, "\n%s:\n", pluralize(r.Count.Mismatches, "mismatch", "mismatches"))
		for _, p := range r.Probes {
			if p.Error == "" && !p.OK {
				fmt.Fprintf(w, "  %s %s: %s -> %s (%s): expected %s, observed %s (%s); %s\n",
					paint(text.FgRed, "✗"), p.Cell, p.From, p.To, probeAddr(p), p.Expected, p.Observed, p.Detail, p.Why)
				if p.DecidedBy != "" {
					fmt.Fprintf(w, "      decided by %s\n", p.DecidedBy)
				}
			}
		}
	}
	if r.Count.Errors > 0 {
		// A host that cannot be reached fails all its probes the same way.
		var msgs []string
		n := map[string]int{}
		for _, p := range r.Probes {
			if p.Error != "" {
				if n[p.Error] == 0 {
					msgs = append(msgs, p.Error)
				}
				n[p.Error]++
			}
		}
		fmt.Fprintf(w, "\n%s could not be made:\n", pluralize(r.Count.Errors, "probe", "probes"))
		for _, m := range msgs {
			suffix := ""
			if n[m] > 1 {
				suffix = fmt.Sprintf(" (%d probes)", n[m])
			}
			fmt.Fprintf(w, "  %s %s%s\n", paint(text.FgYellow, "!"), m, suffix)
		}
	}
	if matrix && len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnot probed, or sampled:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	if len(r.LeftOut) > 0 {
		var names []string
		for _, h := range r.LeftOut {
			why := strings.ReplaceAll(h.Status, "_", " ")
			if h.Status != check.ExcludedStatus {
				why += " in the run"
			}
			names = append(names, fmt.Sprintf("%s (%s)", h.Host, why))
		}
		fmt.Fprintf(w, "check: left out %s from or to %s\n", pluralize(r.Count.LeftOut, "probe", "probes"), strings.Join(names, ", "))
	}
	took := time.Duration(r.Seconds * float64(time.Second)).Round(time.Millisecond)
	status := paint(text.FgGreen, "all as expected")
	if r.exit() != exitOK {
		status = paint(text.FgRed, fmt.Sprintf("%d as expected, %s, %d failed", r.Count.Expected, pluralize(r.Count.Mismatches, "mismatch", "mismatches"), r.Count.Errors))
	}
	fmt.Fprintf(w, "check: %s from %s and the controller in %s: %s\n", pluralize(r.Count.Probes, "probe", "probes"), pluralize(r.Count.Hosts, "host", "hosts"), took, status)
}

// writeMatrix prints one row per destination role and port, one column
// per source role, and a mark per cell.
func (r *checkReport) writeMatrix(w io.Writer, tty bool, paint func(text.Color, string) string) {
	var froms []string
	var rows []roles.Cell // one per destination: From left empty
	byKey := map[roles.Cell]check.Cell{}
	for _, c := range r.Cells {
		if !slices.Contains(froms, c.From) {
			froms = append(froms, c.From)
		}
		dest := c.Key
		dest.From = ""
		if !slices.Contains(rows, dest) {
			rows = append(rows, dest)
		}
		byKey[c.Key] = c
	}
	slices.SortFunc(froms, func(a, b string) int {
		return cmp.Or(boolCmp(a != roles.Controller, b != roles.Controller), strings.Compare(a, b))
	})
	slices.SortFunc(rows, func(a, b roles.Cell) int {
		return cmp.Or(strings.Compare(a.To, b.To), strings.Compare(a.Net, b.Net), cmp.Compare(a.Port, b.Port))
	})
	t := table.NewWriter()
	t.SetOutputMirror(w)
	header := table.Row{`to \ from`}
	for _, f := range froms {
		header = append(header, f)
	}
	t.AppendHeader(header)
	for _, dest := range rows {
		row := table.Row{dest.Dest()}
		for _, f := range froms {
			k := dest
			k.From = f
			c, ok := byKey[k]
			if !ok {
				row = append(row, "")
				continue
			}
			want := map[string]string{string(roles.Reachable): "open", string(roles.Filtered): "shut"}[c.Expected]
			if want == "" {
				want = c.Expected
			}
			color := map[string]text.Color{check.MarkOK: text.FgGreen, check.MarkMismatch: text.FgRed, check.MarkFailed: text.FgYellow}[c.Mark]
			row = append(row, want+" "+paint(color, c.Mark))
		}
		t.AppendRow(row)
	}
	if tty {
		t.SetStyle(table.StyleLight)
	} else {
		t.SetStyle(table.StyleDefault)
		t.Style().Options = table.OptionsNoBordersAndSeparators
	}
	t.Style().Format.Header = text.FormatDefault // role names as written
	t.Render()
	fmt.Fprintln(w, "open: must be reachable, shut: must be filtered; ✓ as expected, ✗ mismatch, ! probe failed")
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func probeAddr(p check.Probe) string {
	if strings.Contains(p.Addr, ":") {
		return fmt.Sprintf("[%s]:%d", p.Addr, p.Port)
	}
	return fmt.Sprintf("%s:%d", p.Addr, p.Port)
}

func pluralize(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
