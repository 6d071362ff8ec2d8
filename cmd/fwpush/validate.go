package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/english"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate INVENTORY",
		Short: "Check an inventory and the policies it renders, contacting nothing",
		Long: `validate loads the inventory, checks every key, address, port, role,
template and interface name, renders every host's policy and makes sure that
none of them would lock fwpush out. Then it loads every policy with this
machine's iptables-restore and ip6tables-restore, each in a network
namespace of its own that goes away with it (as root; as another user, in a
user namespace too, where the kernel allows it): what a server would refuse
is refused here. It reports every problem at once, as file:line: key:
message, and contacts no host.

Warnings, such as keys that have no effect or policies that could not be
loaded here, are printed on stderr as file:line: key: warning: message and
do not change the exit status: 0 when valid, 3 when not.`,
		Example: "  fwpush validate site.toml",
		Args:    inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, l, err := loadPlanFor(cmd, args[0], true)
			if err != nil {
				return err
			}
			loaded := ""
			if l.loaded > 0 {
				loaded = fmt.Sprintf("; iptables-restore takes all %d policies (IPv4 and IPv6)", l.loaded)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s, %s%s\n", args[0], english.Count(len(plan.Inventory.Hosts), "host"), english.Count(len(plan.Inventory.Roles), "role"), loaded)
			return nil
		},
	}
}
