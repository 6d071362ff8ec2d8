package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
	"github.com/fwpush/fwpush/runner/transport"
)

// connFlags are how a command reaches the fleet; a flag wins over the
// FWPUSH_* variable (which `fwpush lab exec` sets), the variable over the
// inventory, and the inventory over OpenSSH's client configuration
// (~/.ssh/config, or -F FILE), which fills what it leaves out.
type connFlags struct {
	identity, knownHosts string
	sshConfig            string
	acceptNew            bool
	verbose              int      // -v info, -vv debug
	via                  []string // bastions forced, one per site
	quiet                bool     // no warnings (run --quiet, under cron)
}

func (c *connFlags) register(cmd *cobra.Command) {
	c.registerRoute(cmd)
	cmd.Flags().BoolVar(&c.acceptNew, "accept-new", false, "trust and record the keys of hosts known_hosts does not know yet (a changed key is never accepted)")
	cmd.Flags().CountVarP(&c.verbose, "verbose", "v", "log what happens on stderr: -v each step, -vv every command and connection")
}

// registerRoute registers the flags that say how hosts are reached, which
// ssh-config shows.
func (c *connFlags) registerRoute(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.identity, "identity", "", "private key file (default: $FWPUSH_IDENTITY, then [ssh] identity, then ssh_config's IdentityFile)")
	cmd.Flags().StringVar(&c.knownHosts, "known-hosts", "", "known_hosts file (default: $FWPUSH_KNOWN_HOSTS, then [ssh] known_hosts, then ssh_config's UserKnownHostsFile)")
	cmd.Flags().StringVarP(&c.sshConfig, "ssh-config", "F", "", "OpenSSH client config file to read instead of ~/.ssh/config and /etc/ssh/ssh_config")
	cmd.Flags().StringSliceVar(&c.via, "via", nil, "reach a site through this bastion, not the first of its tunnel list that answers (one per site; repeat or comma-separate)")
}

// given is v if the inventory wrote it, else "".
func given(v string, written bool) string {
	if written {
		return v
	}
	return ""
}

// open opens the fleet a command works on: c's SSH options, the sudo
// password when askPass (read once, from the terminal), and each site's
// bastion when a host of it is first needed.
func (c *connFlags) open(inv *inventory.Inventory, askPass bool, stderr io.Writer) (*runner.SSHFleet, transport.Options, error) {
	opts, err := c.options(inv, stderr)
	if err != nil {
		return nil, opts, err
	}
	pass, err := becomePass(askPass)
	if err != nil {
		return nil, opts, err
	}
	fleet, err := openFleet(inv, opts, pass, c.via, stderr)
	return fleet, opts, err
}

// options are the transport's options for inv. ssh_config says what the
// inventory, the flags and the variables leave out: each host's user, port
// and identity files (see runner.Open), and the known_hosts files the
// tunnel's entry names (UserKnownHostsFile, the first of which records
// new keys, and GlobalKnownHostsFile, /etc/ssh/ssh_known_hosts by
// default), hashed as HashKnownHosts says.
func (c *connFlags) options(inv *inventory.Inventory, stderr io.Writer) (transport.Options, error) {
	logger := newLogger(c.verbose, stderr)
	files := transport.DefaultSSHConfigFiles()
	if c.sshConfig != "" {
		if _, err := os.Stat(c.sshConfig); err != nil {
			return transport.Options{}, &inputError{fmt.Errorf("--ssh-config: %w", err)}
		}
		files = []string{c.sshConfig}
	}
	cfg, err := transport.LoadSSHConfig(files...)
	if err != nil {
		// The operator's file, like the inventory: invalid input.
		return transport.Options{}, &exitError{code: exitInvalid, err: err}
	}
	if !c.quiet {
		warnIgnored(inv, cfg, stderr)
	}
	logger.Debug("ssh_config", "files", cfg.Paths)
	// The first bastion's entry, as the one fwpush tries first.
	tunnel := inv.Bastions(inv.Sites[0].Name)[0]
	tc := cfg.Lookup(tunnel.Name, tunnel.PublicIP.String())
	known := cmp.Or(c.knownHosts, os.Getenv("FWPUSH_KNOWN_HOSTS"), given(inv.SSH.KnownHosts, inv.SSH.Given.KnownHosts))
	var more []string
	if known == "" && len(tc.UserKnownHosts) > 0 {
		known, more = tc.UserKnownHosts[0], tc.UserKnownHosts[1:]
	}
	return transport.Options{
		User:           inv.SSH.User,
		Identity:       cmp.Or(c.identity, os.Getenv("FWPUSH_IDENTITY"), given(inv.SSH.Identity, inv.SSH.Given.Identity)),
		KnownHosts:     cmp.Or(known, inventory.DefaultKnownHosts),
		MoreKnownHosts: append(more, tc.GlobalKnownHosts...),
		HashKnownHosts: tc.HashKnownHosts,
		SSHConfig:      cfg,
		AcceptNew:      c.acceptNew,
		Timeout:        inv.SSH.Timeout,
		Logger:         logger,
	}, nil
}

type runFlags struct {
	conn          connFlags
	ssh           sshOverrides
	dryRun, check bool // check: the deprecated spelling of --dry-run --no-diff
	diff, noDiff  bool
	limit         string
	quiet, asJSON bool
	noVerify      bool
	forceOwn      bool
	// strictPreserve: a preserved chain that accepts every packet is drift.
	strictPreserve bool
	askBecomePass  bool
	lockWait       time.Duration
	metrics        metricsFlag
	snapshot       string // --inventory-snapshot
}

// strictPreserveUsage is the --strict-preserve flag's help, run's and plan's.
const strictPreserveUsage = "keep no preserved chain that accepts every packet without a match from INPUT, FORWARD or OUTPUT: it is drift (refused, removed with --force-own)"

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] INVENTORY",
		Short: "Push every host's policy: apply what differs, under a rollback guard",
		Long: `run connects to the tunnel host, reaches every other host through it, and in
parallel compares each host's live rules with its rendered policy. Where they
differ it applies the policy atomically under a guard: the host restores its
old rules by itself unless a fresh SSH connection confirms within
rollback_after. Then it writes /etc/iptables/rules.v4 and rules.v6
(installing iptables-persistent if needed). The tunnel host is changed last.
Hosts that already match are left alone: a second run changes nothing.

The filter table is fwpush's: chains that the policy does not declare are
drift unless [firewall] preserve (or the role's preserve) keeps them, as
Docker's and fail2ban's. run refuses a host that has such unknown chains,
or where ufw, firewalld or the nftables service would replace the policy,
or where the other iptables backend holds rules; --force-own removes the
unknown chains and applies beside those managers.

On a terminal the hosts in flight are shown with their step and time below
the finished ones. What the inventory leaves out of how to reach a host
(user, port, identity, known_hosts) comes from ~/.ssh/config (or -F FILE).
--parallel, --timeout and --rollback-after (or FWPUSH_PARALLEL,
FWPUSH_TIMEOUT, FWPUSH_ROLLBACK_AFTER) override [ssh].

--metrics-file writes the results for Prometheus, into node_exporter's
textfile directory: each host's status, rules added and removed and
whether they are saved, and the run's start, duration, outcome and the
time of its last full success (see docs/metrics.md). fwpush schedule
writes a systemd timer, or a cron line, that runs it so.

A run waits for another run of the same inventory on this machine, at most
--lock-wait. SIGINT, SIGTERM and SIGHUP stop starting hosts and let the ones
in flight settle (confirmed, or rolled back by their guard); a second
signal stops at once. See RELIABILITY.md.

Exit status: 0 all good; 1 a host failed, was unreachable, rolled back or
not tried, the check after the run found a mismatch, or another run held
the inventory past --lock-wait; 2 changes pending (--dry-run); 3 invalid
input (nothing contacted); 128+N interrupted by signal N (130 SIGINT, 143
SIGTERM, 129 SIGHUP).`,
		Example: `  fwpush run --dry-run site.toml          # review: diff of live vs desired, changes nothing
  fwpush run site.toml
  fwpush run --limit db,haproxy-www site.toml
  fwpush run --diff site.toml              # apply, and show each changed host's diff
  fwpush run --quiet site.toml             # from cron: silent unless something changed (with its diff) or failed
  fwpush run --parallel 5 --rollback-after 2m site.toml
  fwpush run --force-own --limit mysql-2 site.toml  # remove the chains no preserve pattern keeps
  fwpush run --dry-run --no-diff --json site.toml   # monitoring: exit 2 if anything drifted
  fwpush run --quiet --json --metrics-file /var/lib/prometheus/node-exporter/fwpush-site.prom site.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.check {
				fmt.Fprintln(cmd.ErrOrStderr(), "fwpush: run --check is deprecated: use run --dry-run --no-diff (fwpush check probes the network)")
				f.dryRun, f.noDiff = true, true
			}
			f.ssh.seen(cmd)
			return runPush(cmd.Context(), args[0], f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show a diff of live against desired rules per host; change nothing")
	cmd.Flags().BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the password sudo wants on the hosts (or set $FWPUSH_BECOME_PASS)")
	cmd.Flags().BoolVar(&f.diff, "diff", false, "print the unified diff of every host whose rules change (--dry-run and --quiet do too)")
	cmd.Flags().BoolVar(&f.noDiff, "no-diff", false, "print no diff body, in the text and in --json: with --dry-run, only which hosts would change")
	cmd.Flags().BoolVar(&f.check, "check", false, "deprecated: --dry-run --no-diff")
	_ = cmd.Flags().MarkHidden("check") // not MarkDeprecated: its note would go to stdout, into --json
	registerLimit(cmd, &f.limit)
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print nothing when every host is unchanged; else the report with the diffs")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON report on stdout")
	cmd.Flags().BoolVar(&f.noVerify, "no-verify", false, "do not probe the network after applying (see fwpush check)")
	cmd.Flags().DurationVar(&f.lockWait, "lock-wait", defaultLockWait, lockWaitUsage)
	cmd.Flags().BoolVar(&f.forceOwn, "force-own", false, "take the filter table over: remove the chains no preserve pattern keeps, and apply beside ufw, firewalld or nftables")
	cmd.Flags().BoolVar(&f.strictPreserve, "strict-preserve", false, strictPreserveUsage)
	addSnapshotFlag(cmd, &f.snapshot)
	f.ssh.register(cmd)
	f.metrics.register(cmd)
	return cmd
}

func runPush(ctx context.Context, path string, f runFlags, stdout, stderr io.Writer) error {
	plan, err := loadPlan(ctx, path)
	if err != nil {
		return err
	}
	inv := plan.Inventory
	if f.snapshot != "" {
		if err := writeSnapshot(inv, path, f.snapshot, time.Now()); err != nil {
			return err
		}
	}
	if err := f.ssh.apply(inv); err != nil {
		return err
	}
	hosts, err := selectHosts(inv, f.limit)
	if err != nil {
		return err
	}
	if err := f.metrics.ready(); err != nil {
		return err
	}
	unlock, err := lockInventory(ctx, path, false, f.lockWait, func(holder string) {
		if !f.quiet && !f.asJSON {
			fmt.Fprintf(stderr, "fwpush: another run of this inventory is in progress%s; waiting for it (at most %s: --lock-wait)\n", holderOf(holder), f.lockWait)
		}
	})
	if err != nil {
		return err
	}
	defer unlock()

	// One fleet for the whole command: the run and the check after it
	// share each site's connection.
	f.conn.quiet = f.quiet
	fleet, opts, err := f.conn.open(inv, f.askBecomePass, stderr)
	if err != nil {
		return err
	}
	defer fleet.Close()

	// Which hosts joined and left the fleet since the last run: the
	// report says it, and so does the history of every host changed.
	members, err := loadMembership(path, inv)
	if err != nil && !f.quiet {
		fmt.Fprintf(stderr, "fwpush: the fleet of the last run: %v: which hosts joined and left is not told\n", err)
	}
	out := newReporter(stdout, f)
	out.members = members
	start := time.Now()
	results := runner.Run(ctx, plan, hosts, fleet, runner.RunOptions{
		DryRun:         f.dryRun,
		ForceOwn:       f.forceOwn,
		StrictPreserve: f.strictPreserve,
		Logger:         opts.Logger,
		OnStart:        out.start,
		OnStep:         out.step,
		OnDone:         out.done,
		History:        history.Run{Version: fullVersion(), Inventory: inv.Digest(), Joined: members.joined, Left: members.left},
	})
	took := time.Since(start)
	// A dry run changes nothing, this record included; a run that was
	// interrupted, or reached no host, leaves the comparison to the next.
	if !f.dryRun && ctx.Err() == nil && reachedAny(results) {
		if err := members.save(); err != nil && !f.quiet {
			fmt.Fprintf(stderr, "fwpush: the fleet of this run is not kept for the next: %v\n", err)
		}
	}
	out.sites = fleet.Reached()
	out.finish(results, took)
	code := exitFor(results)
	var check *checkReport
	// Interrupted: the report says what each host has; nothing more is
	// probed.
	if ctx.Err() == nil && !f.dryRun && !f.noVerify {
		check = verifyAfterRun(ctx, plan, results, fleet, opts.Logger, stdout, f)
		if code == exitOK && check != nil {
			code = check.exit()
		}
	}
	if ctx.Err() != nil {
		code = interruptCode(ctx)
	}
	code = f.metrics.writeRun(inv, start, took, results, check, code, stderr)
	if f.asJSON {
		if err := out.writeJSON(inv.Path, results, took, fleet.Err(""), check, code); err != nil {
			return err
		}
	}
	return exitWith(code)
}

// reachedAny reports whether the run reached a host.
func reachedAny(results []runner.HostResult) bool {
	return slices.ContainsFunc(results, func(r runner.HostResult) bool {
		return r.Status != runner.NotTried && r.Status != runner.Unreachable && r.Status != runner.Skipped
	})
}

// oneLine keeps a message on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}
