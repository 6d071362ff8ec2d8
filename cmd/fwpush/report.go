package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/runner"
)

// schemaVersion names the shape of the --json documents of run and check
// (docs/json.md, docs/fwpush.schema.json). It changes only when a key is
// removed or changes meaning; keys may be added within a version.
const schemaVersion = "fwpush/v1"

// statusKey is a status as JSON writes it, as a value and as a key of
// "counts": snake_case ("drift_repaired").
func statusKey(s runner.Status) string { return s.Key() }

// runStatuses are the statuses in the order summaries list them.
var runStatuses = runner.Statuses

// hostJSON is one host in run's JSON report, the same shape as in check's
// (check.Host): which host, its role, what became of it (status) and, when
// it failed, at which step and why. The other fields are run's.
type hostJSON struct {
	Host   string `json:"host"`
	Role   string `json:"role"`
	Status string `json:"status"`
	Stage  string `json:"stage,omitempty"`
	Error  string `json:"error,omitempty"`

	// run
	Backend   string   `json:"backend,omitempty"`
	Added     *int     `json:"added,omitempty"`
	Removed   *int     `json:"removed,omitempty"`
	Persisted *bool    `json:"persisted,omitempty"`
	Boot      string   `json:"boot,omitempty"`
	Unknown   []string `json:"unknown_chains,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Diff      string   `json:"diff,omitempty"`
	// fwpush's sets that differ, their members added and removed, and
	// their diff (not with --no-diff).
	Sets           []change.SetDiff `json:"sets,omitempty"`
	MembersAdded   int              `json:"members_added,omitempty"`
	MembersRemoved int              `json:"members_removed,omitempty"`
	SetsDiff       string           `json:"sets_diff,omitempty"`
	Seconds        *float64         `json:"seconds,omitempty"`
}

// runReport is run's --json document.
type runReport struct {
	Schema    string `json:"schema"`
	Command   string `json:"command"`
	Inventory string `json:"inventory"`
	DryRun    bool   `json:"dry_run"`
	// Error is a problem of fwpush's own side that stopped every host (no
	// usable key, the tunnel down): then every host is not_tried.
	Error string `json:"error,omitempty"`
	// Sites say through which bastion each site was reached, and why the
	// ones before it were skipped.
	Sites  []jsonSite     `json:"sites,omitempty"`
	Hosts  []hostJSON     `json:"hosts"`
	Counts map[string]int `json:"counts"`
	// Joined and Left are the hosts that joined and left the fleet since
	// the last run of the inventory on this machine (see membership).
	Joined []string `json:"joined,omitempty"`
	Left   []string `json:"left,omitempty"`
	// Check is the check run made after it changed rules, if it made one.
	Check    *checkReport `json:"check,omitempty"`
	Seconds  float64      `json:"seconds"`
	ExitCode int          `json:"exit_code"`
}

// writeJSON writes one indented JSON document, arrows and all as they are
// ("app -> db:3306", not "app -\u003e db:3306").
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// reporter prints a run: progress while it runs (see progress), then
// the diffs that were asked for, a summary table and the errors; or one
// JSON document with --json; or, with --quiet, nothing at all when every
// host is unchanged.
type reporter struct {
	w     io.Writer
	f     runFlags
	st    style
	prog  *progress
	sites []runner.Reach // how the sites were reached, for --json
	// command is the --json document's command: "" for run's, "apply".
	command string
	// members says which hosts joined and left the fleet; nil when not
	// known.
	members *membership
}

func newReporter(w io.Writer, f runFlags) *reporter {
	st := styleFor(w)
	r := &reporter{w: w, f: f, st: st}
	// No block while -v logs to the same screen: the redraw would erase
	// the log lines written in between.
	r.prog = newProgress(w, st, r.live() && f.conn.verbose == 0)
	return r
}

// live reports whether hosts are shown as they go.
func (r *reporter) live() bool { return !r.f.quiet && !r.f.asJSON }

// start and step follow a host in flight.
func (r *reporter) start(host string) {
	if r.live() {
		r.prog.start(host)
	}
}

func (r *reporter) step(host, step string) {
	if r.live() {
		r.prog.step(host, step)
	}
}

// done prints one line as a host finishes.
func (r *reporter) done(res runner.HostResult) {
	if !r.live() {
		return
	}
	line := fmt.Sprintf("%-20s %s", res.Host, r.status(res.Status))
	// Rules added and removed, then the members of fwpush's sets: a new
	// app server is "(members +1 -0)" on the db servers, no rule.
	var counts []string
	if res.Added+res.Removed > 0 && res.Status != runner.Unchanged {
		counts = append(counts, fmt.Sprintf("+%d -%d", res.Added, res.Removed))
	}
	if res.MembersAdded+res.MembersRemoved > 0 && res.Status != runner.Unchanged {
		counts = append(counts, fmt.Sprintf("members +%d -%d", res.MembersAdded, res.MembersRemoved))
	}
	if len(counts) > 0 {
		line += " (" + strings.Join(counts, ", ") + ")"
	}
	if len(res.Unknown) > 0 && res.Status == runner.Pending {
		line += " unknown chains: " + strings.Join(res.Unknown, ", ")
	}
	if d := res.Duration.Round(time.Millisecond); d > 0 {
		line += fmt.Sprintf("  %s", d)
	}
	r.prog.done(res.Host, line)
}

func (r *reporter) status(s runner.Status) string {
	return paintStatus(r.st, s)
}

// paintStatus colours a status as summaries show it.
func paintStatus(st style, s runner.Status) string {
	if !st.color {
		return string(s)
	}
	switch s {
	case runner.Unchanged:
		return text.FgGreen.Sprint(s)
	case runner.Applied, runner.DriftRepaired, runner.Pending:
		return text.FgYellow.Sprint(s)
	}
	return text.FgRed.Sprint(s)
}

func exitFor(results []runner.HostResult) int {
	if slices.ContainsFunc(results, func(r runner.HostResult) bool { return r.Status == runner.Skipped }) {
		return exitInterrupted
	}
	code := exitOK
	for _, r := range results {
		if !r.Status.OK() {
			return exitFailed
		}
		if r.Status == runner.Pending {
			code = exitChanges
		}
	}
	return code
}

// showDiffs reports whether the text report prints the diffs of changed
// hosts: with --dry-run and --diff, and with --quiet, so that cron's mail
// says which rules changed; never with --no-diff.
func (r *reporter) showDiffs() bool {
	return !r.f.noDiff && (r.f.dryRun || r.f.diff || r.f.quiet)
}

// quietNow reports whether --quiet keeps the report to itself: every host
// unchanged, and nothing to warn of.
func (r *reporter) quietNow(results []runner.HostResult) bool {
	return r.f.quiet && r.fleetChange() == "" && !slices.ContainsFunc(results, func(res runner.HostResult) bool {
		return res.Status != runner.Unchanged || len(res.Warnings) > 0
	})
}

// fleetChange says which hosts joined and left the fleet, "joined: a, b;
// left: c"; "" for none, or when not known.
func (r *reporter) fleetChange() string {
	if r.members == nil {
		return ""
	}
	return r.members.String()
}

// finish prints the text report of a run (nothing with --json, which
// writeJSON prints once the check after the run is done too).
func (r *reporter) finish(results []runner.HostResult, took time.Duration) {
	r.prog.close()
	if r.f.asJSON || r.quietNow(results) {
		return
	}
	if r.showDiffs() {
		for _, res := range results {
			if res.Diff == "" && res.SetsDiff == "" {
				continue
			}
			fmt.Fprintf(r.w, "\n--- %s (%s): %s\n%s", res.Host, res.Role, res.Status, paintDiff(r.st, res.Diff+res.SetsDiff))
		}
	}
	fmt.Fprintln(r.w)
	t := table.NewWriter()
	t.SetOutputMirror(r.w)
	t.AppendHeader(table.Row{"host", "role", "result", "added", "removed", "persisted", "time"})
	counts := map[runner.Status]int{}
	for _, res := range results {
		counts[res.Status]++
		t.AppendRow(table.Row{res.Host, res.Role, r.status(res.Status), res.Added, res.Removed, persistedCell(res.Boot), res.Duration.Round(time.Millisecond)})
	}
	if r.st.tty {
		t.SetStyle(table.StyleLight)
	} else {
		t.SetStyle(table.StyleDefault)
		t.Style().Options = table.OptionsNoBordersAndSeparators
	}
	t.Render()
	var parts []string
	for _, s := range runStatuses {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(r.w, "%s in %s: %s\n", english.Count(len(results), "host"), took.Round(time.Millisecond), strings.Join(parts, ", "))
	if c := r.fleetChange(); c != "" {
		fmt.Fprintf(r.w, "fleet since the last run: %s\n", c)
	}
	for _, res := range results {
		// Hosts not tried share one cause, printed once before any host.
		if res.Err != nil && res.Status != runner.NotTried {
			fmt.Fprintf(r.w, "error: %v\n", res.Err)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(r.w, "warning: host %s: %s\n", res.Host, w)
		}
	}
}

// writeJSON prints run's JSON document: every host's result, the check
// after the run if one was made, and the exit code the command ends with.
func (r *reporter) writeJSON(inventory string, results []runner.HostResult, took time.Duration, local error, check *checkReport, code int) error {
	rep := runReport{Schema: schemaVersion, Command: cmp.Or(r.command, "run"), Inventory: inventory, DryRun: r.f.dryRun,
		Sites: jsonSites(r.sites), Hosts: []hostJSON{}, Counts: map[string]int{}, Check: check, Seconds: took.Seconds(), ExitCode: code}
	if local != nil {
		rep.Error = local.Error()
	}
	if r.members != nil {
		rep.Joined, rep.Left = r.members.joined, r.members.left
	}
	for _, s := range runStatuses {
		rep.Counts[statusKey(s)] = 0
	}
	for _, res := range results {
		added, removed, persisted, secs := res.Added, res.Removed, res.Persisted, res.Duration.Seconds()
		h := hostJSON{Host: res.Host, Role: res.Role, Status: statusKey(res.Status), Stage: res.Stage, Backend: res.Backend,
			Added: &added, Removed: &removed, Persisted: &persisted, Boot: bootKey(res.Boot), Unknown: res.Unknown, Warnings: res.Warnings, Seconds: &secs}
		h.Sets, h.MembersAdded, h.MembersRemoved = res.Sets, res.MembersAdded, res.MembersRemoved
		if !r.f.noDiff {
			h.Diff, h.SetsDiff = res.Diff, res.SetsDiff
		}
		if res.Err != nil {
			h.Error = res.Err.Error()
		}
		rep.Hosts = append(rep.Hosts, h)
		rep.Counts[statusKey(res.Status)]++
	}
	return writeJSON(r.w, rep)
}

// persistedCell is the summary's "persisted" column: what the host loads
// if it reboots now. A host that failed says whether its earlier rules are
// still in place, not a bare "no".
func persistedCell(b runner.Boot) string {
	switch b {
	case runner.BootPolicy:
		return "yes"
	case runner.BootEarlier:
		return "earlier"
	case runner.BootNone:
		return "none"
	}
	return "?"
}

// bootKey is what a host loads at boot, as --json says it.
func bootKey(b runner.Boot) string { return cmp.Or(string(b), "unknown") }

// paintDiff colours a unified diff on a terminal, as git does: removed
// lines red, added lines green, hunk headers cyan.
func paintDiff(st style, diff string) string {
	if !st.color {
		return diff
	}
	var b strings.Builder
	for line := range strings.SplitAfterSeq(diff, "\n") {
		body := strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(body, "+++"), strings.HasPrefix(body, "---"):
			body = text.Bold.Sprint(body)
		case strings.HasPrefix(body, "+"):
			body = text.FgGreen.Sprint(body)
		case strings.HasPrefix(body, "-"):
			body = text.FgRed.Sprint(body)
		case strings.HasPrefix(body, "@@"):
			body = text.FgCyan.Sprint(body)
		}
		b.WriteString(body)
		if strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
