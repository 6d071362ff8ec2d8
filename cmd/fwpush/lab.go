package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/lab"
)

func newLabCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Rehearse a fleet on this machine: namespaces, real sshd, real iptables",
		Long: `lab turns an inventory into a private, throwaway copy of its fleet on this
Linux machine: every host in its own network namespace with the inventory's
interfaces and addresses, a root filesystem of its own (an overlay of this
machine's, where whatever the host installs or changes stays), its login
user with sudo, a real OpenSSH sshd with a fresh host key and no firewall
rules; a "controller" namespace on the public network (the operator's
laptop) and a "stranger" on the private one. Nothing is added to the
machine's own network, its firewall is never touched and its files never
change. Needs root.

The lab's name comes from the inventory's file name, or from --name; two labs
of different names can be up at once.`,
		Example: `  fwpush lab up site.toml
  fwpush lab exec site.toml -- fwpush run site.toml
  fwpush lab probe site.toml stranger 198.18.0.31 3306
  fwpush lab reboot site.toml mysql-1
  fwpush lab down site.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&name, "name", "", "lab name (default: the inventory's file name)")
	labName := func(path string) (string, error) {
		if name != "" {
			if err := lab.CheckName(name); err != nil {
				return "", &inputError{err}
			}
			return name, nil
		}
		n, err := lab.NameFor(path)
		if err != nil {
			return "", &inputError{err}
		}
		return n, nil
	}
	// open finds a lab that is up, after the checks every subcommand makes.
	open := func(path string) (*lab.Lab, error) {
		n, err := labName(path)
		if err != nil {
			return nil, err
		}
		if err := lab.CheckRoot(); err != nil {
			return nil, err
		}
		l, err := lab.Open(n)
		if errors.Is(err, lab.ErrNotUp) {
			return nil, fmt.Errorf("%w: bring it up with: %s lab up %s", err, self(), upArgs(name, path))
		}
		return l, err
	}

	cmd.AddCommand(
		newLabUpCmd(labName, &name),
		&cobra.Command{
			Use:   "down INVENTORY",
			Short: "Remove the lab and everything it left behind",
			Long: `down removes every namespace, process, bridge, veth, mount and file of the
lab, found by name: it also cleans up after a crash or an interrupted up, and
does nothing when the lab is down. Processes started in the lab's namespaces
(lab exec, lab shell) are killed too. The inventory file itself is only used
for the lab's name.`,
			Example: `  fwpush lab down site.toml
  fwpush lab down --name staging site.toml`,
			Args: inventoryArg,
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := labName(args[0])
				if err != nil {
					return err
				}
				if err := lab.Down(cmd.Context(), n); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s: down\n", n)
				return nil
			},
		},
		&cobra.Command{
			Use:   "status INVENTORY",
			Short: "Show the lab's hosts, namespaces, sshd pids and memory",
			Long: `status shows whether the lab is up, every node's namespace, addresses and
sshd pid, and the memory its processes use. Exit status 0 when the lab is up,
1 when it is down or broken.`,
			Example: "  fwpush lab status site.toml",
			Args:    inventoryArg,
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := labName(args[0])
				if err != nil {
					return err
				}
				if err := lab.CheckRoot(); err != nil {
					return err
				}
				st, err := lab.StatusOf(n)
				if err != nil {
					return err
				}
				printStatus(cmd.OutOrStdout(), st)
				if !st.Up {
					return &exitError{code: exitFailed}
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "exec INVENTORY -- COMMAND [ARGS...]",
			Short: "Run a command on the controller, the lab's operator laptop",
			Long: `exec runs a command in the controller's namespace, on the lab's public
network, with FWPUSH_IDENTITY and FWPUSH_KNOWN_HOSTS set to the lab's client
key and known_hosts: fwpush run there reaches the lab's hosts with the
inventory unchanged. FWPUSH_STATE_DIR is a directory of the lab's: what a
run keeps for the next (the fleet it saw) stays with the lab. The command's exit status is exec's. SIGINT, SIGTERM
and SIGHUP are the command's: exec passes them on (but a ^C or a hangup,
which the terminal sends to the command too) and waits for it, so that
fwpush run there settles its hosts, reports and exits 130.`,
			Example: `  fwpush lab exec site.toml -- fwpush run site.toml
  fwpush lab exec site.toml -- ssh -F /var/lib/fwpush-lab/site/ssh_config 203.0.113.10 uptime`,
			Args: commandArgs(1, "INVENTORY"),
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := open(args[0])
				if err != nil {
					return err
				}
				// Not cancelled by fwpush's signals: they are the command's.
				return runPassthrough(cmd, l.Command(context.WithoutCancel(cmd.Context()), args[1], args[2:]...))
			},
		},
		&cobra.Command{
			Use:   "shell INVENTORY HOST -- COMMAND [ARGS...]",
			Short: "Run a command inside one host, as its sshd sees it",
			Long: `shell runs a command inside a host, as root, as its sshd sees it: its
interfaces, its firewall, its own root filesystem (what the command installs
or writes stays on that host). The command's exit status is shell's.`,
			Example: `  fwpush lab shell site.toml mysql-1 -- iptables-save
  fwpush lab shell site.toml mysql-1 -- cat /etc/iptables/rules.v4`,
			Args: commandArgs(2, "INVENTORY HOST"),
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := open(args[0])
				if err != nil {
					return err
				}
				c, err := l.HostCommand(context.WithoutCancel(cmd.Context()), args[1], args[2], args[3:]...)
				if err != nil {
					return err
				}
				return runPassthrough(cmd, c)
			},
		},
		newLabRebootCmd(open),
		newLabFakeDOCmd(),
		&cobra.Command{
			Use:   "probe INVENTORY FROM ADDRESS PORT",
			Short: "Tell whether a TCP port is reachable from a host, the controller or the stranger",
			Long: fmt.Sprintf(`probe tries a TCP connection from FROM (a host, "controller" or "stranger";
"stranger@SITE" for a site's own in an inventory of sites) to ADDRESS:PORT
and prints "reachable" when the packet got there (the connection was
accepted or refused) or "filtered" when it did not (no answer within %s, or
the way is closed).`, lab.ProbeTimeout),
			Example: `  fwpush lab probe site.toml controller 203.0.113.10 22
  fwpush lab probe site.toml stranger 198.18.0.31 3306`,
			Args: func(cmd *cobra.Command, args []string) error {
				if len(args) != 4 {
					return &usageError{fmt.Errorf("%s takes INVENTORY FROM ADDRESS PORT, got %s", cmd.CommandPath(), english.Count(len(args), "argument"))}
				}
				return nil
			},
			RunE: func(cmd *cobra.Command, args []string) error {
				addr, err := netip.ParseAddr(args[2])
				if err != nil {
					return &inputError{fmt.Errorf("%q is not an IP address", args[2])}
				}
				port, err := strconv.Atoi(args[3])
				if err != nil || port < 1 || port > 65535 {
					return &inputError{fmt.Errorf("%q is not a port (1-65535)", args[3])}
				}
				l, err := open(args[0])
				if err != nil {
					return err
				}
				r, err := l.Probe(cmd.Context(), args[1], addr, port)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), r)
				return nil
			},
		},
	)
	return cmd
}

// commandArgs checks the arguments of a command that takes n positional
// arguments, then "--" and a command line.
func commandArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		dash := cmd.ArgsLenAtDash()
		switch {
		case dash < 0:
			return &usageError{fmt.Errorf("%s takes %s, then -- and a command", cmd.CommandPath(), names)}
		case dash != n:
			return &usageError{fmt.Errorf("%s takes %s before --, got %s", cmd.CommandPath(), names, english.Count(dash, "argument"))}
		case len(args) == n:
			return &usageError{fmt.Errorf("%s: no command after --", cmd.CommandPath())}
		}
		return nil
	}
}

// self is fwpush as hints name it, so that they run as printed: as the
// user ran it when that was by a path (bin/fwpush after make build alone:
// lab exec keeps the directory), else fwpush, found on PATH (make install).
func self() string { return invokedAs(os.Args[0]) }

func invokedAs(arg0 string) string {
	if filepath.Base(arg0) == "fwpush" && strings.Contains(arg0, "/") {
		return arg0
	}
	return "fwpush"
}

// upArgs is how the user would write lab up for this lab.
func upArgs(name, path string) string {
	if name != "" {
		return "--name " + name + " " + path
	}
	return path
}

func printUp(w io.Writer, l *lab.Lab, path, name string, took time.Duration) {
	strangers := "stranger " + l.Stranger.Private.IP.String()
	if l.Strangers != nil {
		var each []string
		for _, n := range l.Strangers {
			each = append(each, n.Name+" "+n.Private.IP.String())
		}
		strangers = "strangers " + strings.Join(each, ", ")
	}
	fmt.Fprintf(w, "lab %s: up in %.1fs: %s, controller %s, %s\n",
		l.Name, took.Seconds(), english.Count(len(l.Hosts), "host"), l.Controller.Public.IP, strangers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  client key\t%s\n", l.Identity)
	fmt.Fprintf(tw, "  known_hosts\t%s\n", l.KnownHosts)
	fmt.Fprintf(tw, "  ssh_config\t%s\n", l.SSHConfig)
	tw.Flush()
	fmt.Fprintf(w, "next: %[1]s lab exec %[2]s -- %[1]s run %[3]s\n", self(), upArgs(name, path), path)
}

func printStatus(w io.Writer, st *lab.Status) {
	switch {
	case st.Up:
		fmt.Fprintf(w, "lab %s: up (%s)\n", st.Name, st.Inventory)
	case len(st.Nodes) > 0:
		fmt.Fprintf(w, "lab %s: broken (%s): bring it up again, or down\n", st.Name, st.Inventory)
	case len(st.Leftovers) > 0:
		fmt.Fprintf(w, "lab %s: down, with leftovers that lab down removes:\n", st.Name)
		for _, s := range st.Leftovers {
			fmt.Fprintf(w, "  %s\n", s)
		}
		return
	default:
		fmt.Fprintf(w, "lab %s: down\n", st.Name)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAMESPACE\tSSHD\tADDRESSES")
	for _, n := range st.Nodes {
		netns := n.Netns
		if !n.NetnsUp {
			netns += " (missing)"
		}
		pid := "-"
		switch {
		case n.PID != 0:
			pid = strconv.Itoa(n.PID)
		case n.Name != lab.Controller && !strings.HasPrefix(n.Name, lab.Stranger):
			pid = "not running"
		}
		var addrs []string
		for _, a := range n.Addrs {
			addrs = append(addrs, a.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, netns, pid, strings.Join(addrs, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "memory: %d processes, %s proportional (PSS), %s resident (RSS, shared pages counted per process)\n",
		st.Memory.Processes, mib(st.Memory.PSS), mib(st.Memory.RSS))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
