package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

// newLabUpCmd is lab up. labName resolves the lab's name; name is the
// --name flag's value, for the hints printed.
func newLabUpCmd(labName func(string) (string, error), name *string) *cobra.Command {
	var flags labUpFlags
	cmd := &cobra.Command{
		Use:   "up INVENTORY",
		Short: "Build the lab (rebuild it if it is up)",
		Long: `up builds the lab for an inventory, taking down first a lab of the same name
that is up. Missing prerequisites (openssh-server, iptables, iproute2, sudo)
are installed with apt-get, and the lab's local apt repository (the packages
its hosts may install, iptables-persistent first) is fetched once into
/var/lib/fwpush-lab/.cache/apt. It prints the lab's client key, known_hosts
and ssh_config.

Each host gets the inventory's login user, with the lab's key and, unless it
is root, sudo without a password; root may log in with the lab's key too.
The flags shape the hosts (each value may start with HOST= to shape that
host only): --no-root-login and --sudo as on a cloud image or another team's
server, --no-persistent to rehearse the install of iptables-persistent,
--package and --file to put other firewall managers beside fwpush.`,
		Example: `  fwpush lab up site.toml
  fwpush lab up --name staging site.toml
  fwpush lab up --no-root-login --sudo nopasswd cloud.toml
  fwpush lab up --sudo password --password s3cret --sudo mysql-2=none cloud.toml
  fwpush lab up --no-persistent=mysql-1 --package mysql-2=ufw --file mysql-2=/etc/nftables.conf=./nftables.conf site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := labName(args[0])
			if err != nil {
				return err
			}
			inv, err := inventory.Load(args[0])
			if err != nil {
				return err
			}
			opts, err := flags.options(inv)
			if err != nil {
				return err
			}
			l, err := lab.New(inv, n, opts)
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			if err := lab.CheckRoot(); err != nil {
				return err
			}
			if err := lab.Prerequisites(cmd.Context(), cmd.ErrOrStderr()); err != nil {
				return err
			}
			start := time.Now()
			if err := l.Up(cmd.Context()); err != nil {
				return err
			}
			printUp(cmd.OutOrStdout(), l, args[0], *name, time.Since(start))
			return nil
		},
	}
	flags.register(cmd)
	return cmd
}
