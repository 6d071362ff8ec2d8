package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate INVENTORY",
		Short: "Check an inventory and the policies it renders, contacting nothing",
		Long: `validate loads the inventory, checks every key, address, port, role,
template and interface name, renders every host's policy and makes sure that
none of them would lock fwpush out. It reports every problem at once and
contacts no host. Exit status 0 when valid, 3 when not.`,
		Example: "  fwpush validate site.toml",
		Args:    inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := loadPlan(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s, %s\n", args[0], pluralize(len(plan.Inventory.Hosts), "host", "hosts"), pluralize(len(plan.Inventory.Roles), "role", "roles"))
			return nil
		},
	}
}
