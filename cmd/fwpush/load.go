package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/backend"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/templates"
	"github.com/fwpush/fwpush/xtables"
)

// policyTester loads rendered policies (and their sets, and the tables
// of the nftables backend) into this machine's iptables, ipset and nft,
// each where it can do no harm; xtables.Tester does.
type policyTester = backend.Tester

// newTester is the policyTester validate uses; tests stand in for it.
var newTester = func() policyTester { return &xtables.Tester{} }

// planLoader is what every command that takes an inventory goes through:
// load it, compile every host's policy, and load each policy with this
// machine's iptables-restore, so that what a server would refuse is found
// before any server is contacted. Its errors are the invalid-input kind
// (exit 3). Warnings (keys with no effect, policies it could not load
// here) go to warn, when there is no error.
type planLoader struct {
	tester policyTester
	warn   io.Writer // nil: warnings are not shown
	// opts are the compile's options: roles.Default(), or with sets for
	// the commands that preview them (render and validate --sets).
	opts roles.Options
	// host, when set, is the one host to compile (render --host): what
	// it needs, not the fleet. A name that is no host is a usage error.
	host string
	// loaded counts the documents loaded (an iptables policy's IPv4 and
	// IPv6 documents, an nftables table), and loadedSets the sets ipset
	// did; 0 when they could not be loaded here. said says which loaded
	// them, one phrase per backend.
	loaded, loadedSets int
	said               []string
}

// loadPlan loads an inventory for the commands that act on it (run,
// check, graph) and show no warnings: run's --quiet must stay silent under
// cron. They do not load the policies here: that costs seconds on a large
// fleet, on every cron run, and each host tests its policy with its own
// iptables-restore before anything changes there (see runner/remote).
func loadPlan(ctx context.Context, path string) (*roles.Plan, error) {
	return (&planLoader{opts: roles.Default()}).load(ctx, path)
}

// loadPlanFor loads an inventory for cmd: it stops with cmd's context and
// shows warnings on its stderr; with test, it loads every policy with this
// machine's iptables-restore (validate does).
func loadPlanFor(cmd *cobra.Command, path string, test bool) (*roles.Plan, *planLoader, error) {
	l := newLoader(cmd, test)
	plan, err := l.load(cmd.Context(), path)
	return plan, l, err
}

// newLoader is the loader of cmd: it shows warnings on cmd's stderr; with
// test, it loads every policy with this machine's iptables-restore
// (validate does).
func newLoader(cmd *cobra.Command, test bool) *planLoader {
	l := &planLoader{warn: cmd.ErrOrStderr(), opts: roles.Default()}
	if test {
		l.tester = newTester()
	}
	return l
}

// compile is the phase of loading that reads the inventory, resolves the
// hosts of its source (see loadInventory) and compiles every host's policy
// with opts, or only host's when it is set (a name that is no host's is a
// usage error); tests stand in for it.
var compile = func(ctx context.Context, path, host string, opts roles.Options) (*roles.Plan, error) {
	inv, err := loadInventory(ctx, path)
	if err != nil {
		return nil, err
	}
	hosts := inv.Hosts
	if host != "" {
		h, ok := inv.Host(host)
		if !ok {
			return nil, &inputError{fmt.Errorf("--host %s: no such host in %s", host, path)}
		}
		hosts = []*inventory.Host{h}
	}
	return roles.CompileHosts(inv, templates.ReadFile, hosts, opts) // its error is an *inventory.Error
}

// load loads the plan of the inventory at path. A signal (ctx's end)
// stops it at once, in every phase: the compile, which looks at no
// context and takes seconds on a large fleet, is left to run on in the
// background of a process that is about to exit.
func (l *planLoader) load(ctx context.Context, path string) (*roles.Plan, error) {
	type compiled struct {
		plan *roles.Plan
		err  error
	}
	done := make(chan compiled, 1)
	go func() {
		plan, err := compile(ctx, path, l.host, l.opts)
		done <- compiled{plan, err}
	}()
	var c compiled
	select {
	case c = <-done:
	case <-ctx.Done():
		return nil, interrupted(ctx, "loading "+path)
	}
	if c.err != nil {
		return nil, c.err
	}
	plan, inv := c.plan, c.plan.Inventory
	warnings := inv.Warnings
	if l.tester != nil {
		if w, err := l.test(ctx, plan); err != nil {
			if ctx.Err() != nil {
				return nil, interrupted(ctx, "loading the policies with iptables-restore")
			}
			return nil, err
		} else if w != "" {
			warnings = append(warnings, inventory.Problem{Msg: w, Warning: true})
		}
	}
	if l.warn != nil {
		for _, w := range warnings {
			fmt.Fprintln(l.warn, w.Format(inv.Path))
		}
	}
	return plan, nil
}

// test loads every policy of the plan with its backend's tools (see
// backend.Backend.Test). What they refuse is an error; that they could
// not run here is a warning, returned.
func (l *planLoader) test(ctx context.Context, plan *roles.Plan) (warning string, err error) {
	var rejected []roles.Rejection
	var warnings []string
	bs, groups := backend.Group(plan.Policies)
	for i, b := range bs {
		res, err := b.Test(ctx, l.tester, groups[i])
		if err != nil {
			return "", err
		}
		l.loaded += res.Loaded
		l.loadedSets += res.Sets
		if res.Said != "" {
			l.said = append(l.said, res.Said)
		}
		if res.Warning != "" {
			warnings = append(warnings, res.Warning)
		}
		rejected = append(rejected, res.Rejected...)
	}
	if err := plan.Rejected(rejected); err != nil {
		return "", err
	}
	return strings.Join(warnings, "; "), nil
}

// interrupted is the error of a command a signal stopped while it was
// doing what.
func interrupted(ctx context.Context, what string) error {
	return &exitError{code: interruptCode(ctx), err: fmt.Errorf("interrupted while %s", what)}
}
