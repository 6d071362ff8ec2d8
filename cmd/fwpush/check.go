package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

type checkFlags struct {
	conn    connFlags
	asJSON  bool
	timeout time.Duration
	limit   string
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

Exit status: 0 everything as expected; 1 a mismatch, or a probe that could
not be made; 3 invalid input (nothing contacted).`,
		Example: `  fwpush check site.toml
  fwpush check --json site.toml | jq '.probes[] | select(.ok | not)'
  fwpush check --limit 'mysql-*,!mysql-2' site.toml   # only what mysql-1 sends and receives
  fwpush check --timeout 5s site.toml        # slow networks`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := loadPlan(args[0])
			if err != nil {
				return err
			}
			inv := plan.Inventory
			hosts, err := selectHosts(inv, f.limit)
			if err != nil {
				return err
			}
			unlock, err := lockInventory(args[0], true, func() {
				if !f.asJSON {
					fmt.Fprintln(cmd.ErrOrStderr(), "fwpush: a run of this inventory is in progress; waiting for it")
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
			rep := verify(cmd.Context(), inv, hosts, fleet, verifyOptions{timeout: f.timeout, logger: opts.Logger, progress: prog, leaveOut: excluded(inv, f.limit)})
			prog.close()
			if err := fleet.Err(""); err != nil {
				rep.Error = err.Error()
			}
			rep.Sites = jsonSites(fleet.Reached())
			if f.asJSON {
				if err := writeJSON(stdout, rep); err != nil {
					return err
				}
				return exitWith(rep.exit())
			}
			rep.writeText(stdout, st, true)
			return exitWith(rep.exit())
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON report on stdout")
	cmd.Flags().DurationVar(&f.timeout, "timeout", runner.DefaultProbeTimeout, "how long a probe waits for an answer before it counts as filtered")
	registerLimit(cmd, &f.limit)
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
func verifyAfterRun(ctx context.Context, inv *inventory.Inventory, results []runner.HostResult, fleet runner.Fleet, logger *slog.Logger, w io.Writer, f runFlags) *checkReport {
	var touched []*inventory.Host
	unfinished := excluded(inv, f.limit)
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
	rep := verify(ctx, inv, touched, fleet, verifyOptions{timeout: runner.DefaultProbeTimeout, logger: logger, leaveOut: unfinished, progress: prog})
	prog.close()
	if !f.asJSON && (!f.quiet || rep.exit() != exitOK) {
		fmt.Fprintln(w)
		rep.writeText(w, st, false)
	}
	return rep
}

// checkReport is a check's outcome; its JSON form is the --json document
// (docs/json.md).
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
	// Hosts are the hosts probed from, with what became of their probes.
	Hosts  []hostJSON   `json:"hosts"`
	Probes []checkProbe `json:"probes"`
	Cells  []checkCell  `json:"cells"`
	// Notes say which allowed flows were not probed, and which roles were
	// sampled.
	Notes []string `json:"notes"`
	// LeftOut are the hosts whose probes, from or to them, were left
	// out: the hosts a run did not finish (the check after it), and those
	// --limit excludes.
	LeftOut []leftOut `json:"left_out,omitempty"`
	Count   struct {
		Probes     int `json:"probes"`
		Hosts      int `json:"hosts"` // hosts probed from, the controller not counted
		Expected   int `json:"as_expected"`
		Mismatches int `json:"mismatches"`
		Errors     int `json:"failed"`
		LeftOut    int `json:"left_out"` // probes left out
	} `json:"counts"`
	Seconds  float64 `json:"seconds"`
	ExitCode int     `json:"exit_code"`
}

// leftOut is a host whose probes a check left out, and why: its status in
// the run, or excludedStatus.
type leftOut struct {
	Host   string `json:"host"`
	Status string `json:"status"`
}

// checkProbe is one probe, what it had to find and what it found.
type checkProbe struct {
	Cell     string      `json:"cell"` // "app -> db:3306"
	From     string      `json:"from"`
	FromRole string      `json:"from_role"`
	To       string      `json:"to"`
	ToRole   string      `json:"to_role"`
	Addr     string      `json:"addr"`
	Port     int         `json:"port"`
	Proto    string      `json:"proto"`
	Expected roles.Reach `json:"expected"`
	Observed roles.Reach `json:"observed,omitempty"` // "" when the probe failed
	Detail   string      `json:"detail,omitempty"`
	Error    string      `json:"error,omitempty"`
	Why      string      `json:"why"`
	OK       bool        `json:"ok"`

	cell roles.Cell
}

// checkCell is a cell of the matrix: every probe from one role to one
// role and port.
type checkCell struct {
	From       string `json:"from"` // source role, or "controller"
	To         string `json:"to"`   // "db:3306", "lb public:443"
	Expected   string `json:"expected"`
	Mark       string `json:"mark"` // ✓ all as expected, ✗ a mismatch, ! a probe failed
	Probes     int    `json:"probes"`
	Mismatches int    `json:"mismatches"`
	Errors     int    `json:"failed"`

	cell roles.Cell
}

// cellName names a cell the way reports do: "app -> db:3306".
func cellName(c roles.Cell) string { return c.From + " -> " + c.Dest() }

// excludedStatus is why a check leaves out the probes of a host that
// --limit excludes ("!bastion-1": it is down, say): they could only fail.
const excludedStatus = "excluded_by_limit"

// excluded returns the hosts the '!' terms of limit exclude, with
// excludedStatus.
func excluded(inv *inventory.Inventory, limit string) map[string]string {
	out := map[string]string{}
	for _, h := range inv.Excluded(limit) {
		out[h] = excludedStatus
	}
	return out
}

// verifyOptions shape a check.
type verifyOptions struct {
	timeout time.Duration
	logger  *slog.Logger
	// leaveOut are hosts whose probes, from or to them, are not made, and
	// why: their status in the run, or excludedStatus.
	leaveOut map[string]string
	progress *progress
}

// verify derives the matrix of the probes from or to hosts and runs every
// probe over fleet. A fleet whose tunnel could not be reached fails the
// hosts' probes; the controller's still run.
func verify(ctx context.Context, inv *inventory.Inventory, hosts []*inventory.Host, fleet runner.Fleet, o verifyOptions) *checkReport {
	start := time.Now()
	m := roles.ExpectFor(inv, hosts)
	left := 0
	if len(o.leaveOut) > 0 {
		kept := m.Expectations[:0:0]
		for _, e := range m.Expectations {
			if _, out := o.leaveOut[e.From]; out {
				left++
				continue
			}
			if _, out := o.leaveOut[e.To]; out {
				left++
				continue
			}
			kept = append(kept, e)
		}
		m.Expectations = kept
	}
	probes := make([]runner.Probe, len(m.Expectations))
	for i, e := range m.Expectations {
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
	rep := newCheckReport(inv, m, obs, time.Since(start))
	if left > 0 {
		rep.Count.LeftOut = left
		for _, h := range slices.Sorted(maps.Keys(o.leaveOut)) {
			rep.LeftOut = append(rep.LeftOut, leftOut{Host: h, Status: o.leaveOut[h]})
		}
	}
	return rep
}

func newCheckReport(inv *inventory.Inventory, m roles.Matrix, obs []runner.Observation, took time.Duration) *checkReport {
	rep := &checkReport{Schema: schemaVersion, Command: "check", Inventory: inv.Path, Notes: m.Notes, Seconds: took.Seconds(),
		Hosts: []hostJSON{}, Probes: []checkProbe{}, Cells: []checkCell{}}
	if rep.Notes == nil {
		rep.Notes = []string{}
	}
	hosts := map[string]bool{}
	byHost := map[string]*hostJSON{}
	var hostOrder []string
	cells := map[roles.Cell]*checkCell{}
	var order []roles.Cell
	for i, e := range m.Expectations {
		o := obs[i]
		p := checkProbe{
			Cell: cellName(e.Cell()), From: e.From, FromRole: e.FromRole, To: e.To, ToRole: e.ToRole,
			Addr: e.Addr.String(), Port: e.Port, Proto: e.Proto, Expected: e.Want,
			Observed: o.Reach, Detail: o.Detail, Why: e.Why, OK: o.Err == nil && o.Reach == e.Want,
			cell: e.Cell(),
		}
		if o.Err != nil {
			p.Error = o.Err.Error()
		}
		rep.Probes = append(rep.Probes, p)
		if e.From != roles.Controller {
			hosts[e.From] = true
			h := byHost[e.From]
			if h == nil {
				zero := [3]int{}
				h = &hostJSON{Host: e.From, Role: e.FromRole, Probes: &zero[0], Mismatches: &zero[1], Failed: &zero[2]}
				byHost[e.From] = h
				hostOrder = append(hostOrder, e.From)
			}
			*h.Probes++
			switch {
			case o.Err != nil:
				*h.Failed++
				if h.Error == "" {
					h.Error = o.Err.Error()
				}
				var nt *runner.NotTriedError
				if errors.As(o.Err, &nt) {
					h.Status = statusKey(runner.NotTried)
				}
			case !p.OK:
				*h.Mismatches++
			}
		}
		c, ok := cells[p.cell]
		if !ok {
			c = &checkCell{From: p.cell.From, To: p.cell.Dest(), Expected: string(e.Want), cell: p.cell}
			cells[p.cell] = c
			order = append(order, p.cell)
		}
		if c.Expected != string(e.Want) {
			c.Expected = "mixed"
		}
		c.Probes++
		switch {
		case p.Error != "":
			c.Errors++
			rep.Count.Errors++
		case !p.OK:
			c.Mismatches++
			rep.Count.Mismatches++
		default:
			rep.Count.Expected++
		}
	}
	for _, k := range order {
		c := cells[k]
		c.Mark = "✓"
		if c.Errors > 0 {
			c.Mark = "!"
		}
		if c.Mismatches > 0 {
			c.Mark = "✗"
		}
		rep.Cells = append(rep.Cells, *c)
	}
	slices.Sort(hostOrder)
	for _, name := range hostOrder {
		h := byHost[name]
		switch {
		case h.Status != "": // not tried
		case *h.Failed == *h.Probes:
			h.Status = "failed"
		default:
			h.Status = "probed"
		}
		rep.Hosts = append(rep.Hosts, *h)
	}
	rep.Count.Probes, rep.Count.Hosts = len(rep.Probes), len(hosts)
	rep.ExitCode = rep.exit()
	return rep
}

func (r *checkReport) exit() int {
	if r.Count.Mismatches+r.Count.Errors > 0 {
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
			if h.Status != excludedStatus {
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
	byKey := map[roles.Cell]checkCell{}
	for _, c := range r.Cells {
		if !slices.Contains(froms, c.From) {
			froms = append(froms, c.From)
		}
		dest := c.cell
		dest.From = ""
		if !slices.Contains(rows, dest) {
			rows = append(rows, dest)
		}
		byKey[c.cell] = c
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
			color := map[string]text.Color{"✓": text.FgGreen, "✗": text.FgRed, "!": text.FgYellow}[c.Mark]
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

func probeAddr(p checkProbe) string {
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
