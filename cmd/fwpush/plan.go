package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/planfile"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// now is the clock of plan and apply; tests stand in for it.
var now = time.Now

func newPlanCmd() *cobra.Command {
	var f runFlags
	var out string
	cmd := &cobra.Command{
		Use:   "plan [flags] INVENTORY -o PLAN",
		Short: "Read every host as --dry-run does, and save what a run would do as a plan to apply later",
		Long: `plan reads every host's live rules and files as run --dry-run does, prints the
same (each host's diff and the summary), and writes PLAN: a JSON document
(docs/json.md) holding every host's change — the documents to apply, what
to persist, the diff and counts — with a digest of the host's state it was
decided from, and the digest of the inventory (its content and templates),
the options, fwpush's version and the time.

fwpush apply PLAN then makes exactly those changes, after review: it
refuses, untouched, a host whose state changed since (stale), and the
whole plan if the inventory changed or the plan is older than --max-age.
PLAN is written atomically, mode 0600: it holds every host's policy.

No plan is written when a host could not be read or is refused: the plan
would not say what an apply does there (--limit it out).

Exit status: 0 nothing to do; 2 changes pending; 1 a host failed or was
unreachable (no plan written), or another run held the inventory past
--lock-wait; 3 invalid input (nothing contacted); 128+N interrupted by
signal N.`,
		Example: `  fwpush plan -o site.plan site.toml
  fwpush plan --limit db -o db.plan site.toml
  fwpush plan --force-own --limit mysql-2 -o take-over.plan site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return &usageError{errors.New("plan needs -o PLAN, the file to write the plan to (run --dry-run shows the same without saving it)")}
			}
			f.dryRun = true
			f.ssh.seen(cmd)
			return runPlan(cmd.Context(), args[0], out, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.conn.register(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "the file to write the plan to")
	cmd.Flags().BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the password sudo wants on the hosts (or set $FWPUSH_BECOME_PASS)")
	cmd.Flags().BoolVar(&f.noDiff, "no-diff", false, "print no diff body: only which hosts would change (the plan holds the diffs)")
	cmd.Flags().StringVar(&f.limit, "limit", "", limitUsage)
	cmd.Flags().DurationVar(&f.lockWait, "lock-wait", defaultLockWait, lockWaitUsage)
	cmd.Flags().BoolVar(&f.forceOwn, "force-own", false, "plan to take the filter table over: remove the chains no preserve pattern keeps, apply beside ufw, firewalld or nftables")
	cmd.Flags().BoolVar(&f.strictPreserve, "strict-preserve", false, strictPreserveUsage)
	f.ssh.register(cmd)
	_ = cmd.Flags().MarkHidden("rollback-after") // apply's, not the plan's
	return cmd
}

func runPlan(ctx context.Context, path, out string, f runFlags, stdout, stderr io.Writer) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return &exitError{code: exitInvalid, err: err}
	}
	if o, err := filepath.Abs(out); err == nil && o == abs {
		return &usageError{fmt.Errorf("-o %s is the inventory: write the plan elsewhere", out)}
	}
	plan, err := loadPlan(ctx, path)
	if err != nil {
		return err
	}
	inv := plan.Inventory
	hosts, err := selectHosts(inv, f.limit)
	if err != nil {
		return err
	}
	// What the plan records of the inventory is what apply compiles, before
	// any flag or variable overrides a setting for this command.
	digest := plan.Digest()
	created := now()
	results, code, err := pushJob{path: path, plan: plan, hosts: hosts, f: f, opts: runner.RunOptions{DryRun: true, ForceOwn: f.forceOwn, StrictPreserve: f.strictPreserve}}.do(ctx, stdout, stderr)
	if err != nil {
		return err
	}
	if code != exitOK && code != exitChanges {
		fmt.Fprintf(stderr, "fwpush: no plan written: %s\n", whyNoPlan(results, code))
		return exitWith(code)
	}
	changes := make([]*change.Change, len(results))
	for i, r := range results {
		changes[i] = r.Change
	}
	p := planfile.New(digest, abs, changes, planfile.Options{ForceOwn: f.forceOwn, StrictPreserve: f.strictPreserve, Sets: plan.Options.Sets}, f.limit, fullVersion(), created)
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := writePrivate(out, data); err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	for _, c := range p.Hosts {
		if c.Refusal != nil {
			// A dry run shows such a change; its apply refuses it, as a
			// run does.
			fmt.Fprintf(stderr, "fwpush: plan: host %s: apply will refuse it: %s: %s\n", c.Host, c.Refusal.Stage, c.Refusal.Reason)
		}
	}
	fmt.Fprintf(stdout, "plan: %s to change, written to %s; apply it with: fwpush apply %s\n", pluralize(len(p.Hosts)-p.Counts[string(change.None)], "host", "hosts"), out, out)
	return exitWith(p.ExitCode)
}

// whyNoPlan says why a plan's read ended with code.
func whyNoPlan(results []runner.HostResult, code int) string {
	if code != exitFailed {
		return "interrupted"
	}
	var failed []string
	for _, r := range results {
		if !r.Status.OK() {
			failed = append(failed, r.Host)
		}
	}
	return fmt.Sprintf("%s could not be planned (%s): fix %s, or leave %s out with --limit", pluralize(len(failed), "host", "hosts"), joinShort(failed), itThem(len(failed)), itThem(len(failed)))
}

func itThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// joinShort names at most five hosts.
func joinShort(names []string) string {
	if len(names) > 5 {
		return fmt.Sprintf("%s and %d more", joinComma(names[:5]), len(names)-5)
	}
	return joinComma(names)
}

func joinComma(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// writePrivate replaces the file at path with data, atomically (a
// temporary file in the same directory, synced and renamed over it),
// readable by its owner only.
func writePrivate(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// pushJob is a run of some hosts over the fleet, as run does it: the
// inventory locked, the fleet opened once, progress and the report as run
// prints them, the check after a run that changed rules (unless
// --no-verify), and run's JSON document with --json (as command).
type pushJob struct {
	path    string // the inventory's, for the lock
	plan    *roles.Plan
	hosts   []*inventory.Host
	f       runFlags
	opts    runner.RunOptions
	command string // the JSON document's command; "" is run's
}

// do runs the job and returns every host's result and the exit code.
func (j pushJob) do(ctx context.Context, stdout, stderr io.Writer) ([]runner.HostResult, int, error) {
	inv, f := j.plan.Inventory, j.f
	if err := f.ssh.apply(inv); err != nil {
		return nil, 0, err
	}
	unlock, err := lockInventory(ctx, j.path, false, f.lockWait, func(holder string) {
		if !f.quiet && !f.asJSON {
			fmt.Fprintf(stderr, "fwpush: another run of this inventory is in progress%s; waiting for it (at most %s: --lock-wait)\n", holderOf(holder), f.lockWait)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	fleet, opts, err := f.conn.open(inv, f.askBecomePass, stderr)
	if err != nil {
		return nil, 0, err
	}
	defer fleet.Close()

	out := newReporter(stdout, f)
	out.command = j.command
	start := time.Now()
	ro := j.opts
	ro.Logger, ro.OnStart, ro.OnStep, ro.OnDone = opts.Logger, out.start, out.step, out.done
	// The hosts' histories; which hosts joined and left is run's to say.
	ro.History = history.Run{Version: fullVersion(), Inventory: inv.Digest()}
	results := runner.Run(ctx, j.plan, j.hosts, fleet, ro)
	took := time.Since(start)
	out.sites = fleet.Reached()
	out.finish(results, took)
	code := exitFor(results)
	var check *checkReport
	if ctx.Err() == nil && !f.dryRun && !f.noVerify {
		check = verifyAfterRun(ctx, j.plan, results, fleet, opts.Logger, stdout, f)
		if code == exitOK && check != nil {
			code = check.exit()
		}
	}
	if ctx.Err() != nil {
		code = interruptCode(ctx)
	}
	if f.asJSON {
		if err := out.writeJSON(inv.Path, results, took, fleet.Err(""), check, code); err != nil {
			return results, code, err
		}
	}
	return results, code, nil
}
