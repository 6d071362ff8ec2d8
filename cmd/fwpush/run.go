package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
	"github.com/fwpush/fwpush/runner/transport"
)

// connFlags are how a command reaches the fleet; a flag wins over the
// FWPUSH_* variable (which `fwpush lab exec` sets), the variable over the
// inventory.
type connFlags struct {
	identity, knownHosts string
	acceptNew            bool
	verbose              int // -v info, -vv debug
}

func (c *connFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.identity, "identity", "", "private key file (default: $FWPUSH_IDENTITY, then [ssh] identity)")
	cmd.Flags().StringVar(&c.knownHosts, "known-hosts", "", "known_hosts file (default: $FWPUSH_KNOWN_HOSTS, then [ssh] known_hosts)")
	cmd.Flags().BoolVar(&c.acceptNew, "accept-new", false, "trust and record the keys of hosts known_hosts does not know yet (a changed key is never accepted)")
	cmd.Flags().CountVarP(&c.verbose, "verbose", "v", "log what happens on stderr: -v each step, -vv every command and connection")
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (c *connFlags) options(inv *inventory.Inventory, stderr io.Writer) transport.Options {
	logger := newLogger(c.verbose, stderr)
	return transport.Options{
		User:       inv.SSH.User,
		Identity:   firstSet(c.identity, os.Getenv("FWPUSH_IDENTITY"), inv.SSH.Identity),
		KnownHosts: firstSet(c.knownHosts, os.Getenv("FWPUSH_KNOWN_HOSTS"), inv.SSH.KnownHosts),
		AcceptNew:  c.acceptNew,
		Timeout:    inv.SSH.Timeout,
		Logger:     logger,
	}
}

type runFlags struct {
	conn          connFlags
	dryRun, check bool // check: the deprecated spelling of --dry-run --no-diff
	noDiff        bool
	limit         string
	quiet, asJSON bool
	noVerify      bool
	forceOwn      bool
	askBecomePass bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] INVENTORY",
		Short: "Push every host's policy: apply what differs, under a rollback guard",
		Long: `run connects to the tunnel host, reaches every other host through it, and in
parallel compares each host's live rules with its rendered policy. Where they
differ it applies the policy atomically under a guard: the host restores its
old rules by itself unless a fresh SSH connection confirms within
rollback_after. Then it writes /etc/iptables/rules.v4 and rules.v6
(installing iptables-persistent if needed). The tunnel host is changed last.
Hosts that already match are left alone: a second run changes nothing.

The filter table is fwpush's: chains that the policy does not declare are
drift unless [firewall] preserve (or the role's preserve) keeps them, as
Docker's and fail2ban's. run refuses a host that has such unknown chains,
or where ufw, firewalld or the nftables service would replace the policy,
or where the other iptables backend holds rules; --force-own removes the
unknown chains and applies beside those managers.

SIGINT, SIGTERM and SIGHUP stop starting hosts and let the ones in flight
settle (confirmed, or rolled back by their guard); a second signal stops at
once. See RELIABILITY.md.

Exit status: 0 all good; 1 a host failed, was unreachable or rolled back;
2 changes pending (--dry-run); 3 invalid input (nothing contacted);
130 interrupted.`,
		Example: `  fwpush run --dry-run site.toml          # review: diff of live vs desired, changes nothing
  fwpush run site.toml
  fwpush run --limit db,haproxy-www site.toml
  fwpush run --quiet site.toml             # from cron: silent unless something changed or failed
  fwpush run --force-own --limit mysql-2 site.toml  # remove the chains no preserve pattern keeps
  fwpush run --dry-run --no-diff --json site.toml   # monitoring: exit 2 if anything drifted`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.check {
				fmt.Fprintln(cmd.ErrOrStderr(), "fwpush: run --check is deprecated: use run --dry-run --no-diff (fwpush check probes the network)")
				f.dryRun, f.noDiff = true, true
			}
			return runPush(cmd.Context(), args[0], f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show a diff of live against desired rules per host; change nothing")
	cmd.Flags().BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the password sudo wants on the hosts (or set $FWPUSH_BECOME_PASS)")
	cmd.Flags().BoolVar(&f.noDiff, "no-diff", false, "print no diff body: with --dry-run, only which hosts would change")
	cmd.Flags().BoolVar(&f.check, "check", false, "deprecated: --dry-run --no-diff")
	_ = cmd.Flags().MarkHidden("check") // not MarkDeprecated: its note would go to stdout, into --json
	cmd.Flags().StringVar(&f.limit, "limit", "", limitUsage)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print nothing when every host is unchanged")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON report on stdout")
	cmd.Flags().BoolVar(&f.noVerify, "no-verify", false, "do not probe the network after applying (see fwpush check)")
	cmd.Flags().BoolVar(&f.forceOwn, "force-own", false, "take the filter table over: remove the chains no preserve pattern keeps, and apply beside ufw, firewalld or nftables")
	return cmd
}

func runPush(ctx context.Context, path string, f runFlags, stdout, stderr io.Writer) error {
	plan, err := loadPlan(path)
	if err != nil {
		return err
	}
	inv := plan.Inventory
	hosts, err := selectHosts(inv, f.limit)
	if err != nil {
		return err
	}
	unlock, err := lockInventory(path, false, func() {
		if !f.quiet && !f.asJSON {
			fmt.Fprintln(stderr, "fwpush: another run of this inventory is in progress; waiting for it")
		}
	})
	if err != nil {
		return err
	}
	defer unlock()

	// One fleet for the whole command: the run and the check after it
	// share the tunnel connection.
	opts := f.conn.options(inv, stderr)
	var fleet runner.Fleet
	pass, err := becomePass(f.askBecomePass)
	if err != nil {
		return err
	}
	if ssh, err := runner.Open(ctx, inv, opts, pass); err != nil {
		fleet = runner.Unreached(inv, err)
		if !slices.ContainsFunc(hosts, func(h *inventory.Host) bool { return h.Name == inv.SSH.Tunnel }) {
			fmt.Fprintf(stderr, "fwpush: tunnel %s: %v\n", inv.SSH.Tunnel, err)
		}
	} else {
		defer ssh.Close()
		fleet = ssh
	}

	out := newReporter(stdout, f)
	start := time.Now()
	results := runner.Run(ctx, plan, hosts, fleet, runner.RunOptions{
		DryRun:   f.dryRun,
		ForceOwn: f.forceOwn,
		Logger:   opts.Logger,
		OnDone:   out.done,
	})
	err = out.finish(results, time.Since(start))
	if ctx.Err() != nil {
		// Interrupted: the report says what each host has; nothing more
		// is probed.
		return exitWith(exitInterrupted)
	}
	if f.dryRun || f.noVerify {
		return err
	}
	return cmp.Or(err, verifyAfterRun(ctx, inv, results, fleet, opts.Logger, f.quiet, f.asJSON, stdout, stderr))
}

// reporter prints progress and the summary: a table on a terminal, plain
// lines otherwise, one JSON document with --json, nothing with --quiet
// when nothing happened.
type reporter struct {
	w     io.Writer
	f     runFlags
	tty   bool
	mu    sync.Mutex
	count int
}

func newReporter(w io.Writer, f runFlags) *reporter {
	tty := false
	if file, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(file.Fd()))
	}
	return &reporter{w: w, f: f, tty: tty}
}

func (r *reporter) live() bool { return !r.f.quiet && !r.f.asJSON }

// done prints one line as a host finishes (live progress).
func (r *reporter) done(res runner.HostResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if !r.live() {
		return
	}
	line := fmt.Sprintf("%-20s %s", res.Host, r.status(res.Status))
	if res.Added+res.Removed > 0 && res.Status != runner.Unchanged {
		line += fmt.Sprintf(" (+%d -%d)", res.Added, res.Removed)
	}
	if len(res.Unknown) > 0 && res.Status == runner.Pending {
		line += " unknown chains: " + strings.Join(res.Unknown, ", ")
	}
	fmt.Fprintln(r.w, line)
}

func (r *reporter) status(s runner.Status) string {
	if !r.tty {
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

// jsonReport is the --json document.
type jsonReport struct {
	Hosts   []jsonHost     `json:"hosts"`
	Counts  map[string]int `json:"counts"`
	Seconds float64        `json:"seconds"`
	Exit    int            `json:"exit_code"`
}

type jsonHost struct {
	Host      string   `json:"host"`
	Role      string   `json:"role"`
	Status    string   `json:"status"`
	Stage     string   `json:"stage,omitempty"`
	Backend   string   `json:"backend,omitempty"`
	Added     int      `json:"added"`
	Removed   int      `json:"removed"`
	Persisted bool     `json:"persisted"`
	Unknown   []string `json:"unknown_chains,omitempty"`
	Diff      string   `json:"diff,omitempty"`
	Error     string   `json:"error,omitempty"`
	Seconds   float64  `json:"seconds"`
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

func (r *reporter) finish(results []runner.HostResult, took time.Duration) error {
	code := exitFor(results)
	if r.f.asJSON {
		rep := jsonReport{Counts: map[string]int{}, Seconds: took.Seconds(), Exit: code}
		for _, res := range results {
			h := jsonHost{Host: res.Host, Role: res.Role, Status: string(res.Status), Stage: res.Stage, Backend: res.Backend,
				Added: res.Added, Removed: res.Removed, Persisted: res.Persisted, Unknown: res.Unknown, Seconds: res.Duration.Seconds()}
			if r.f.dryRun && !r.f.noDiff {
				h.Diff = res.Diff
			}
			if res.Err != nil {
				h.Error = res.Err.Error()
			}
			rep.Hosts = append(rep.Hosts, h)
			rep.Counts[string(res.Status)]++
		}
		enc := json.NewEncoder(r.w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return exitWith(code)
	}
	quiet := r.f.quiet && !slices.ContainsFunc(results, func(res runner.HostResult) bool { return res.Status != runner.Unchanged })
	if quiet {
		return exitWith(code)
	}
	if r.f.dryRun && !r.f.noDiff {
		for _, res := range results {
			if res.Diff != "" {
				fmt.Fprintf(r.w, "\n--- %s (%s): would change\n%s", res.Host, res.Role, res.Diff)
			}
		}
	}
	fmt.Fprintln(r.w)
	t := table.NewWriter()
	t.SetOutputMirror(r.w)
	t.AppendHeader(table.Row{"host", "role", "result", "added", "removed", "persisted", "time"})
	counts := map[runner.Status]int{}
	for _, res := range results {
		counts[res.Status]++
		persisted := "no"
		if res.Persisted {
			persisted = "yes"
		}
		t.AppendRow(table.Row{res.Host, res.Role, r.status(res.Status), res.Added, res.Removed, persisted, res.Duration.Round(time.Millisecond)})
	}
	if r.tty {
		t.SetStyle(table.StyleLight)
	} else {
		t.SetStyle(table.StyleDefault)
		t.Style().Options = table.OptionsNoBordersAndSeparators
	}
	t.Render()
	var parts []string
	for _, s := range []runner.Status{runner.Unchanged, runner.Pending, runner.Applied, runner.DriftRepaired, runner.RolledBack, runner.Unknown, runner.Failed, runner.Unreachable, runner.Skipped} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(r.w, "%s in %s: %s\n", pluralize(len(results), "host", "hosts"), took.Round(time.Millisecond), strings.Join(parts, ", "))
	for _, res := range results {
		if res.Err != nil {
			fmt.Fprintf(r.w, "error: %v\n", res.Err)
		}
	}
	return exitWith(code)
}

func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}
