package main

import (
	"fmt"

	"github.com/fwpush/fwpush/inventory"
)

// limitUsage is the help text of --limit, the same on every command.
const limitUsage = `only these hosts: host, role and site names, globs, !exclusions, &intersections, comma-separated ('mysql-*,!mysql-2')`

// selectHosts applies --limit (see inventory.Select); a pattern that
// names nothing is a usage error.
func selectHosts(inv *inventory.Inventory, limit string) ([]*inventory.Host, error) {
	hosts, err := inv.Select(limit)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--limit %s: %w", limit, err)}
	}
	return hosts, nil
}
