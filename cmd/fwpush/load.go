package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/templates"
	"github.com/fwpush/fwpush/xtables"
)

// policyTester loads rendered policies into this machine's iptables, each
// where it can do no harm; xtables.Tester does.
type policyTester interface {
	Test(ctx context.Context, docs []xtables.Doc) ([]error, error)
}

var _ policyTester = (*xtables.Tester)(nil)

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
	// loaded counts the policies iptables-restore loaded; 0 when it could
	// not run here.
	loaded int
}

// loadPlan loads an inventory for the commands that act on it (run,
// check, graph) and show no warnings: run's --quiet must stay silent under
// cron. They do not load the policies here: that costs seconds on a large
// fleet, on every cron run, and each host tests its policy with its own
// iptables-restore before anything changes there (see runner/remote).
func loadPlan(ctx context.Context, path string) (*roles.Plan, error) {
	return (&planLoader{}).load(ctx, path)
}

// loadPlanFor loads an inventory for cmd: it stops with cmd's context and
// shows warnings on its stderr; with test, it loads every policy with this
// machine's iptables-restore (validate does).
func loadPlanFor(cmd *cobra.Command, path string, test bool) (*roles.Plan, *planLoader, error) {
	l := &planLoader{warn: cmd.ErrOrStderr()}
	if test {
		l.tester = newTester()
	}
	plan, err := l.load(cmd.Context(), path)
	return plan, l, err
}

// compile is the phase of loading that reads the inventory, resolves the
// hosts of its source (see loadInventory) and compiles every host's
// policy; tests stand in for it.
var compile = func(ctx context.Context, path string) (*roles.Plan, error) {
	inv, err := loadInventory(ctx, path)
	if err != nil {
		return nil, err
	}
	return roles.Compile(inv, templates.ReadFile) // its error is an *inventory.Error
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
		plan, err := compile(ctx, path)
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

// test loads every policy of the plan with iptables-restore. What it
// refuses is an error; that it could not run here is a warning, returned.
func (l *planLoader) test(ctx context.Context, plan *roles.Plan) (warning string, err error) {
	type ref struct {
		host   string
		family int
	}
	var docs []xtables.Doc
	var refs []ref
	for _, p := range plan.Policies {
		docs = append(docs, xtables.Doc{Family: 4, Text: p.V4}, xtables.Doc{Family: 6, Text: p.V6})
		refs = append(refs, ref{p.Host.Name, 4}, ref{p.Host.Name, 6})
	}
	results, err := l.tester.Test(ctx, docs)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "policies not loaded with iptables-restore, as a server would: " + err.Error(), nil
	}
	var rejected []roles.Rejection
	for i, r := range results {
		var rej *xtables.Rejected
		switch {
		case r == nil:
			l.loaded++
		case errors.As(r, &rej):
			rejected = append(rejected, roles.Rejection{Host: refs[i].host, Family: refs[i].family, Line: rej.Line, Msg: rej.Msg})
		default:
			return "", fmt.Errorf("host %s: IPv%d policy: %w", refs[i].host, refs[i].family, r)
		}
	}
	return "", plan.Rejected(rejected)
}

// interrupted is the error of a command a signal stopped while it was
// doing what.
func interrupted(ctx context.Context, what string) error {
	return &exitError{code: interruptCode(ctx), err: fmt.Errorf("interrupted while %s", what)}
}
