package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/english"
)

func newValidateCmd() *cobra.Command {
	var snapshot string
	cmd := &cobra.Command{
		Use:   "validate INVENTORY",
		Short: "Check an inventory and the policies it renders, contacting nothing",
		Long: `validate loads the inventory, checks every key, address, port, role,
template and interface name, renders every host's policy and makes sure that
none of them would lock fwpush out. Then it loads every policy with this
machine's iptables-restore and ip6tables-restore, each in a network
namespace of its own that goes away with it (as root; as another user, in a
user namespace too, where the kernel allows it): what a server would refuse
is refused here. It reports every problem at once, as file:line: key:
message, and contacts no host. With a [digitalocean] table it first reads
the droplets of its role tags from the API, and checks them as hosts.

Warnings, such as keys that have no effect or policies that could not be
loaded here, are printed on stderr as file:line: key: warning: message and
do not change the exit status: 0 when valid, 3 when not, 1 when the
DigitalOcean API fails.`,
		Example: "  fwpush validate site.toml",
		Args:    inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := newLoader(cmd, true)
			plan, err := l.load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if snapshot != "" {
				if err := writeSnapshot(plan.Inventory, args[0], snapshot, time.Now()); err != nil {
					return err
				}
			}
			loaded := ""
			if len(l.said) > 0 {
				loaded = "; " + strings.Join(l.said, "; ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s, %s%s\n", args[0], english.Count(len(plan.Inventory.Hosts), "host"), english.Count(len(plan.Inventory.Roles), "role"), loaded)
			return nil
		},
	}
	addSnapshotFlag(cmd, &snapshot)
	return cmd
}
