package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/explain"
	"github.com/fwpush/fwpush/roles"
)

func newExplainCmd() *cobra.Command {
	var public bool
	cmd := &cobra.Command{
		Use:   "explain [flags] INVENTORY FROM TO PROTO/PORT",
		Short: "Say whether FROM may open PROTO/PORT on TO, and which rule decides, offline",
		Long: `explain answers, from the inventory alone, whether the policies it compiles
let FROM open PROTO/PORT on TO, and why. It walks the packet through FROM's
OUTPUT chain (when FROM is a host) and TO's INPUT chain, as the check
matrix's expectations are derived, and prints the first line "allowed" or
"denied"; then, for every source host and destination host (and address of
it), the rule that decides, as rendered, with its line in the host's
rendered policy, and the inventory entry that produced it (file:line: the
allow entry and the host it names, public_tcp, the tunnel), or the chain's
policy and the template line that sets it. It contacts nothing.

FROM is a host, a role (each of its hosts), an address, a CIDR (every
address of it), or "internet" (any machine on the internet). An address or
CIDR is a machine on the private network of TO's site, as the source of an
allow entry is; with --public, or when it is IPv6, one on the internet,
reaching TO's public addresses. TO is a host or a role (each of its hosts;
a role's host to itself is left out). Between sites, a host reaches the
public addresses of the other.

fwpush check's mismatches are explained the same way.

Exit status: 0 allowed (every path); 1 denied (any path); 3 invalid input:
the inventory, or a FROM, TO or PROTO/PORT it does not know.`,
		Example: `  fwpush explain site.toml wordpress-1 mysql-1 tcp/3306
  fwpush explain site.toml app db tcp/22
  fwpush explain site.toml internet haproxy-www tcp/443
  fwpush explain site.toml 198.51.100.0/24 wordpress-1 tcp/9100
  fwpush explain --public 198.51.100.7 haproxy-www tcp/80 site.toml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 4 {
				return &usageError{fmt.Errorf("%s takes an inventory, FROM, TO and PROTO/PORT, got %s", cmd.CommandPath(), pluralize(len(args), "argument", "arguments"))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			proto, port, err := explain.ParsePort(args[3])
			if err != nil {
				return &usageError{err}
			}
			l := newLoader(cmd, false)
			plan, err := l.load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			a, err := explain.New(plan).Explain(explain.Query{From: args[1], To: args[2], Proto: proto, Port: port, Public: public})
			if errors.Is(err, explain.ErrQuery) {
				return &usageError{err}
			} else if err != nil {
				return err
			}
			writeAnswer(cmd.OutOrStdout(), plan.Inventory.Path, a)
			if !a.Allowed {
				return exitWith(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&public, "public", false, "an address or CIDR FROM is on the internet, reaching TO's public addresses")
	return cmd
}

// writeAnswer prints an answer: "allowed" or "denied", then each path,
// the chains it goes through and what decides in each, and where that
// comes from in the inventory at file.
func writeAnswer(w io.Writer, file string, a *explain.Answer) {
	fmt.Fprintln(w, explain.Verdict(a.Allowed))
	for _, p := range a.Paths {
		fmt.Fprintf(w, "%s: %s\n", p.String(), explain.Verdict(p.Allowed))
		for _, h := range p.Hops {
			fmt.Fprintf(w, "  %s\n    %s\n", h.String(), explain.Where(file, h.Origin))
		}
		if p.Note != "" {
			fmt.Fprintf(w, "  %s\n", p.Note)
		}
	}
}

// decidedBy explains, from plan's policies, what decides the verdict a
// probe of check's matrix expects; "" when it cannot tell.
func decidedBy(plan *roles.Plan) func(roles.Expectation) string {
	e := explain.New(plan)
	return func(x roles.Expectation) string {
		p, err := e.Expectation(x)
		if err != nil {
			return ""
		}
		return p.Because(plan.Inventory.Path)
	}
}
