package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
)

// limitUsage is the help text of --limit, the same on every command.
const limitUsage = `only these hosts: host, role and site names, globs, !exclusions, &intersections, comma-separated ('mysql-*,!mysql-2')`

// registerLimit gives cmd --limit, -l for short as in Ansible, and
// Ansible's --list-hosts: print the hosts --limit selects and stop,
// contacting none. It wraps cmd's RunE, so it comes after it is set.
func registerLimit(cmd *cobra.Command, limit *string) {
	var list bool
	cmd.Flags().StringVarP(limit, "limit", "l", "", limitUsage)
	cmd.Flags().BoolVar(&list, "list-hosts", false, "print the hosts --limit selects, and stop without contacting any")
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !list {
			return run(cmd, args)
		}
		inv, err := loadInventory(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		hosts, err := selectHosts(inv, *limit)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "  hosts (%d):\n", len(hosts))
		for _, h := range hosts {
			fmt.Fprintf(w, "    %s\n", h.Name)
		}
		return nil
	}
}

// selectHosts applies --limit (see inventory.Select); a pattern that
// names nothing is invalid input.
func selectHosts(inv *inventory.Inventory, limit string) ([]*inventory.Host, error) {
	hosts, err := inv.Select(limit)
	if err != nil {
		return nil, &inputError{fmt.Errorf("--limit %s: %w", limit, err)}
	}
	return hosts, nil
}
