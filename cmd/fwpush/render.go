package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/roles"
)

func newRenderCmd() *cobra.Command {
	var host, out string
	cmd := &cobra.Command{
		Use:   "render [--host NAME] [--out DIR] INVENTORY",
		Short: "Print or write the rendered policies, offline",
		Long: `render prints every host's iptables (IPv4) and ip6tables (IPv6) policy,
the iptables-restore input fwpush would apply, or writes them as
DIR/NAME.rules.v4 and DIR/NAME.rules.v6. It contacts nothing.`,
		Example: `  fwpush render site.toml
  fwpush render --host mysql-1 site.toml
  fwpush render --out /tmp/policies site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, _, err := loadPlanFor(cmd, args[0], false)
			if err != nil {
				return err
			}
			policies := plan.Policies
			if host != "" {
				p, ok := plan.Policy(host)
				if !ok {
					return &inputError{fmt.Errorf("--host %s: no such host in %s", host, args[0])}
				}
				policies = []*roles.Policy{p}
			}
			if out != "" {
				return writePolicies(out, policies)
			}
			w := cmd.OutOrStdout()
			for _, p := range policies {
				fmt.Fprintf(w, "### %s.rules.v4\n%s", p.Host.Name, p.V4)
				fmt.Fprintf(w, "### %s.rules.v6\n%s", p.Host.Name, p.V6)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "render only this host")
	cmd.Flags().StringVar(&out, "out", "", "write DIR/NAME.rules.v4 and DIR/NAME.rules.v6 instead of printing")
	return cmd
}

func writePolicies(dir string, policies []*roles.Policy) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range policies {
		for ext, data := range map[string][]byte{"v4": p.V4, "v6": p.V6} {
			if err := os.WriteFile(filepath.Join(dir, p.Host.Name+".rules."+ext), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
