package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/lab"
)

// newLabRebootCmd is lab reboot. open finds the lab that is up.
func newLabRebootCmd(open func(string) (*lab.Lab, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "reboot INVENTORY HOST",
		Short: "Reboot one host: its rules are gone, and what boot runs loads them again",
		Long: `reboot restarts a host as a server reboots, to prove that the policy it
persisted comes back: every process of the host ends, the kernel forgets its
rules (no rules, every policy ACCEPT, IPv4 and IPv6), and the host starts
again on its own filesystem with fresh /run and /tmp, running what boot runs
before sshd: netfilter-persistent start (which loads /etc/iptables/rules.v4
and rules.v6) when iptables-persistent is installed, and nftables or ufw
when they are installed and enabled. It prints what the boot ran; exit
status 1 when a boot service failed (the host is up all the same).`,
		Example: `  fwpush lab reboot site.toml mysql-1
  fwpush lab shell site.toml mysql-1 -- iptables-save`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("%s takes INVENTORY HOST, got %d arguments", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := open(args[0])
			if err != nil {
				return err
			}
			if _, err := l.Host(args[1]); err != nil {
				return err
			}
			start := time.Now()
			rerr := l.Reboot(cmd.Context(), args[1])
			log, err := l.BootLog(args[1])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for line := range strings.Lines(log) {
				fmt.Fprintf(w, "  %s", line)
			}
			if rerr != nil {
				return rerr
			}
			fmt.Fprintf(w, "lab %s: %s rebooted in %.1fs\n", l.Name, args[1], time.Since(start).Seconds())
			return nil
		},
	}
}
