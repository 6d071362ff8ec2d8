package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/backend"
	"github.com/fwpush/fwpush/roles"
)

func newRenderCmd() *cobra.Command {
	var host, out string
	cmd := &cobra.Command{
		Use:   "render [--host NAME] [--out DIR] INVENTORY",
		Short: "Print or write the rendered policies, offline",
		Long: `render prints every host's iptables (IPv4) and ip6tables (IPv6) policy,
the iptables-restore input fwpush would apply, or writes them as
DIR/NAME.rules.v4 and DIR/NAME.rules.v6, and the ipsets its rules match,
for ipset restore (DIR/NAME.ipsets). For a host of the nftables backend it
prints the nft -f input instead, the table inet fwpush, written as
DIR/NAME.nft. With --host it compiles that host only. It contacts nothing.`,
		Example: `  fwpush render site.toml
  fwpush render --host mysql-1 site.toml
  fwpush render --out /tmp/policies site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			l := newLoader(cmd, false)
			l.host = host
			plan, err := l.load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if out != "" {
				return writePolicies(out, plan.Policies)
			}
			w := cmd.OutOrStdout()
			for _, p := range plan.Policies {
				for _, f := range backend.For(p.Host).Files(p) {
					fmt.Fprintf(w, "### %s.%s\n%s", p.Host.Name, f.Ext, f.Text)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "render only this host")
	cmd.Flags().StringVar(&out, "out", "", "write DIR/NAME.rules.v4, DIR/NAME.rules.v6 and DIR/NAME.ipsets instead of printing")
	return cmd
}

// writePolicies writes each policy's documents into dir, as its backend
// names them: NAME.rules.v4, NAME.rules.v6 and, when it has sets,
// NAME.ipsets; or NAME.nft.
func writePolicies(dir string, policies []*roles.Policy) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range policies {
		for _, f := range backend.For(p.Host).Files(p) {
			if err := os.WriteFile(filepath.Join(dir, p.Host.Name+"."+f.Ext), f.Text, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
