package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/planfile"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

type applyFlags struct {
	runFlags
	maxAge    time.Duration
	inventory string
}

func newApplyCmd() *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply [flags] PLAN",
		Short: "Make exactly the changes of a saved plan, on the hosts still as the plan read them",
		Long: `apply carries out a plan that fwpush plan saved, through the same guarded
protocol as run (apply under a rollback guard, confirm over a fresh
connection, persist), and then checks the network as run does. It makes
the plan's changes, not new ones: each host is read again first, and a host
whose firewall state is no longer the one the plan was made on (a rule or
file changed by hand since, another run applied, an unconfirmed apply
settled) is left untouched, with status stale. A host the plan leaves
unchanged is read too: unchanged if it still is, stale otherwise.

The plan is refused whole, nothing contacted, if it was made by another
version of fwpush, is older than --max-age, or its inventory (read again
from the path the plan records, or --inventory) no longer compiles from the
same content and templates. The plan's --force-own and --strict-preserve,
if it was made with them, hold.

--limit narrows the plan to some of its hosts. SSH and concurrency settings
come from the inventory and the flags, as for run.

Exit status: 0 every host applied (or unchanged); 1 a host failed, was
stale or unreachable, rolled back, or the check after it found a mismatch;
3 the plan is refused, or invalid input (nothing contacted); 128+N
interrupted by signal N.`,
		Example: `  fwpush plan -o site.plan site.toml && fwpush apply site.plan
  fwpush apply --limit db site.plan
  fwpush apply --max-age 24h --inventory ./site.toml site.plan`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{fmt.Errorf("%s takes one plan file, got %s", cmd.CommandPath(), pluralize(len(args), "argument", "arguments"))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.maxAge <= 0 {
				return &usageError{fmt.Errorf("--max-age %s: a plan's age is a positive duration", f.maxAge)}
			}
			f.ssh.seen(cmd)
			return runApply(cmd.Context(), args[0], f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.conn.register(cmd)
	cmd.Flags().DurationVar(&f.maxAge, "max-age", planfile.DefaultMaxAge, "refuse a plan older than this")
	cmd.Flags().StringVar(&f.inventory, "inventory", "", "read the plan's inventory here rather than at the path the plan records (it must be the same)")
	cmd.Flags().BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the password sudo wants on the hosts (or set $FWPUSH_BECOME_PASS)")
	cmd.Flags().BoolVar(&f.diff, "diff", false, "print the unified diff of every host whose rules change")
	cmd.Flags().StringVar(&f.limit, "limit", "", limitUsage+"; of the plan's hosts")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON report on stdout")
	cmd.Flags().BoolVar(&f.noVerify, "no-verify", false, "do not probe the network after applying (see fwpush check)")
	cmd.Flags().DurationVar(&f.lockWait, "lock-wait", defaultLockWait, lockWaitUsage)
	f.ssh.register(cmd)
	return cmd
}

// refused is a plan apply refuses whole: nothing was contacted.
func refused(err error) error { return &exitError{code: exitInvalid, err: err} }

func runApply(ctx context.Context, planPath string, f applyFlags, stdout, stderr io.Writer) error {
	data, err := os.ReadFile(planPath)
	if err != nil {
		return refused(fmt.Errorf("read plan: %w", err))
	}
	p, err := planfile.Parse(data)
	if err != nil {
		return refused(fmt.Errorf("%s: %w", planPath, err))
	}
	path := p.Inventory.Path
	if f.inventory != "" {
		path = f.inventory
	}
	l := &planLoader{opts: loadOptions(p)}
	plan, err := l.load(ctx, path)
	if err != nil {
		var ie *inventory.Error
		if errors.As(err, &ie) {
			return refused(fmt.Errorf("%s: the plan's inventory does not load:\n%w", planPath, err))
		}
		return err
	}
	if err := p.Check(plan, now(), f.maxAge, fullVersion()); err != nil {
		return refused(fmt.Errorf("%s: %w", planPath, err))
	}
	inv := plan.Inventory
	hosts, err := planHosts(inv, p, f.limit)
	if err != nil {
		return err
	}
	_, code, err := pushJob{path: path, plan: plan, hosts: hosts, f: f.runFlags, command: "apply",
		opts: runner.RunOptions{ForceOwn: p.Options.ForceOwn, StrictPreserve: p.Options.StrictPreserve, Planned: p.Changes()}}.do(ctx, stdout, stderr)
	if err != nil {
		return err
	}
	return exitWith(code)
}

// loadOptions are the compile's options of a plan.
func loadOptions(p *planfile.Plan) roles.Options {
	o := roles.Default()
	o.Sets = p.Options.Sets
	return o
}

// planHosts are the hosts of the plan, in the inventory's order, that
// limit selects.
func planHosts(inv *inventory.Inventory, p *planfile.Plan, limit string) ([]*inventory.Host, error) {
	selected, err := selectHosts(inv, limit)
	if err != nil {
		return nil, err
	}
	in := p.Changes()
	// Select may hand out the inventory's own list: filter a copy.
	hosts := slices.DeleteFunc(slices.Clone(selected), func(h *inventory.Host) bool { return in[h.Name] == nil })
	if len(hosts) == 0 {
		return nil, &usageError{fmt.Errorf("--limit %s selects no host of the plan (it holds %s)", limit, pluralize(len(p.Hosts), "host", "hosts"))}
	}
	return hosts, nil
}
