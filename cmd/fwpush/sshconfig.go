package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
	"github.com/fwpush/fwpush/runner/transport"
)

func newSSHConfigCmd() *cobra.Command {
	var f connFlags
	var host string
	cmd := &cobra.Command{
		Use:   "ssh-config [flags] INVENTORY",
		Short: "Show how each host is reached: address, port, user, keys, known_hosts, bastion",
		Long: `ssh-config shows what fwpush run and check would use to reach each host, as
ssh -G does for OpenSSH: the address and port it dials, the user it logs in
as and whether it becomes root with sudo, the identity files it offers,
the known_hosts files it checks host keys against, and the bastion it goes
through (the first of its site's list; the others, in order, when the ones
before do not answer). What the inventory leaves out comes from
~/.ssh/config and /etc/ssh/ssh_config (or -F FILE), then the defaults; the
flags and the FWPUSH_IDENTITY and FWPUSH_KNOWN_HOSTS variables win, as they
do for run. Nothing is contacted.`,
		Example: `  fwpush ssh-config site.toml
  fwpush ssh-config --host mysql-1 site.toml
  fwpush ssh-config -F ~/.ssh/fleet_config --via bastion-e2 sites.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			hosts := inv.Hosts
			if host != "" {
				h, ok := inv.Host(host)
				if !ok {
					return &inputError{fmt.Errorf("--host %s: no such host in %s", host, args[0])}
				}
				hosts = []*inventory.Host{h}
			}
			opts, err := f.options(inv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// Open checks --via as run does; it contacts nothing.
			fleet, err := runner.Open(inv, opts, runner.OpenOptions{Via: f.via})
			if err != nil {
				return &inputError{err}
			}
			fleet.Close()
			w := cmd.OutOrStdout()
			for i, h := range hosts {
				if i > 0 {
					fmt.Fprintln(w)
				}
				writeRoute(w, inv, h, opts, f.via)
			}
			return nil
		},
	}
	f.registerRoute(cmd)
	cmd.Flags().StringVar(&host, "host", "", "only this host")
	return cmd
}

// writeRoute writes how h is reached, with ssh -G's names where OpenSSH
// has one.
func writeRoute(w io.Writer, inv *inventory.Inventory, h *inventory.Host, opts transport.Options, via []string) {
	carriers := inv.Bastions(h.Site)
	for _, b := range carriers {
		if slices.Contains(via, b.Name) {
			carriers = []*inventory.Host{b}
		}
	}
	public := h == carriers[0]
	t := runner.TargetFor(h, public, opts.SSHConfig)
	what := "role " + h.Role
	if h.Site != "" {
		what += ", site " + h.Site
	}
	fmt.Fprintf(w, "host %s (%s)\n", h.Name, what)
	addr, port, _ := net.SplitHostPort(t.Addr) // TargetFor's own
	fmt.Fprintf(w, "  hostname %s\n  port %s\n  user %s\n", addr, port, opts.UserFor(t))
	become := "none"
	if runner.Becomes(h, t) {
		become = "sudo"
	}
	fmt.Fprintf(w, "  become %s\n", become)
	for _, id := range opts.IdentitiesFor(t) {
		fmt.Fprintf(w, "  identityfile %s\n", id)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		fmt.Fprintf(w, "  identityagent %s\n", sock)
	}
	fmt.Fprintf(w, "  knownhosts %s\n", opts.KnownHosts)
	for _, k := range opts.MoreKnownHosts {
		fmt.Fprintf(w, "  knownhosts %s (read only)\n", k)
	}
	if opts.HashKnownHosts {
		fmt.Fprintln(w, "  hashknownhosts yes")
	}
	if !public {
		fmt.Fprintf(w, "  proxyjump %s (%s)\n", jumpOf(carriers[0], opts), carriers[0].Name)
	}
	for i, b := range carriers[1:] {
		before := "when " + carriers[0].Name + " does not answer"
		if i > 0 {
			before = "when the bastions before it do not answer"
		}
		if b == h {
			bt := runner.TargetFor(b, true, opts.SSHConfig)
			fmt.Fprintf(w, "  # %s: directly, at %s@%s\n", before, opts.UserFor(bt), bt.Addr)
			continue
		}
		fmt.Fprintf(w, "  # %s: proxyjump %s (%s)\n", before, jumpOf(b, opts), b.Name)
	}
}

// jumpOf is how a bastion is dialed when it carries its site: user@address:port.
func jumpOf(b *inventory.Host, opts transport.Options) string {
	t := runner.TargetFor(b, true, opts.SSHConfig)
	return opts.UserFor(t) + "@" + t.Addr
}
