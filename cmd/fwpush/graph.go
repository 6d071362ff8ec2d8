package main

import (
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/roles"
)

func newGraphCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "graph INVENTORY",
		Short: "Print the allowed flows between roles as a Graphviz (DOT) graph",
		Long: `graph prints, in Graphviz's DOT language, every flow the inventory allows
between its roles: the internet to the public_tcp ports of roles with public
addresses, the tunnel's SSH to every role, and each allow entry (a CIDR
source is a node of its own). It contacts nothing; the same inventory always
prints the same graph. Render it with Graphviz's dot. Exit status 0, or 3
when the inventory is invalid.`,
		Example: `  fwpush graph site.toml | dot -Tsvg -o site.svg
  fwpush graph site.toml | dot -Tpng | display`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := loadPlan(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(roles.Graph(plan.Inventory))
			return err
		},
	}
}
