package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fwpush/fwpush/bench/relay"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/policy"
)

// fleet is one lab under measurement, with the inventory it was built from
// and every host's rendered policy.
type fleet struct {
	cfg      Config
	dir      string // the fleet's work directory
	inv      *inventory.Inventory
	invPath  string
	lab      *lab.Lab
	policies string               // directory of HOST.rules.v4 and HOST.rules.v6 (fwpush render --out)
	want     map[string][2]string // host -> rendered IPv4 and IPv6 policy
	parallel int
	ssh      sshSetup
	// link is the relay between the controller and the tunnel, nil at
	// RTT 0.
	link *slowLink
	// watch, when set, watches the servers' side of every scenario (the
	// servers part), in the cgroups of cgroups (see servers.go).
	watch   *serverWatch
	cgroups *cgroups
}

// sampled is one measurement of one scenario.
type sampled struct {
	scenario Scenario
	Sample
}

// openFleet writes an inventory of n hosts, renders its policies with
// fwpush, and brings its lab up.
func openFleet(ctx context.Context, cfg Config, work string, n int) (*fleet, error) {
	dir := filepath.Join(work, fmt.Sprintf("fleet-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &fleet{cfg: cfg, dir: dir, invPath: filepath.Join(dir, "fleet.toml"), policies: filepath.Join(dir, "policies")}
	if err := os.WriteFile(f.invPath, lab.FleetTOML(n), 0o644); err != nil {
		return nil, err
	}
	inv, err := inventory.Load(f.invPath)
	if err != nil {
		return nil, err
	}
	f.inv, f.parallel = inv, inv.SSH.Parallel
	if out, err := exec.CommandContext(ctx, cfg.FwPush, "render", "--out", f.policies, f.invPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fwpush render: %w: %s", err, out)
	}
	f.want = map[string][2]string{}
	for _, h := range inv.Hosts {
		var p [2]string
		for i, ext := range []string{"v4", "v6"} {
			data, err := os.ReadFile(filepath.Join(f.policies, h.Name+".rules."+ext))
			if err != nil {
				return nil, fmt.Errorf("fwpush render: %w", err)
			}
			p[i] = string(data)
		}
		f.want[h.Name] = p
	}
	// Lab names stay unique per process, so a smoke run in make test never
	// meets a make bench of the same machine.
	l, err := lab.New(inv, fmt.Sprintf("fwb%x-%d", os.Getpid(), n), lab.Options{})
	if err != nil {
		return nil, err
	}
	f.lab = l
	if err := l.Up(ctx); err != nil {
		return nil, err
	}
	if err := f.setupSSH(); err != nil {
		return nil, errors.Join(err, f.close())
	}
	return f, nil
}

// close takes the lab down, with a context of its own: the run's may be
// cancelled already.
func (f *fleet) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f.stopMasters()
	var err error
	if f.link != nil {
		err = f.link.close(ctx)
	}
	err = errors.Join(err, f.lab.Down(ctx))
	err = errors.Join(err, f.cgroups.remove())
	if f.ssh.control != "" {
		err = errors.Join(err, os.RemoveAll(f.ssh.control))
	}
	return err
}

// netnsDir is where ip(8), and so the lab, keeps named network namespaces.
const netnsDir = "/run/netns"

// setRTT makes the controller reach the tunnel with round-trip time rtt
// from now on: through a relay that holds bytes rtt/2 each way, or
// directly at RTT 0. The previous relay, if any, is closed first, with
// the connections it still carries.
func (f *fleet) setRTT(ctx context.Context, rtt time.Duration) error {
	if f.link != nil {
		err := f.link.close(ctx)
		f.link = nil
		if err != nil {
			return err
		}
	}
	if rtt == 0 {
		return nil
	}
	tun := f.inv.Tunnel()
	target := netip.AddrPortFrom(tun.PublicIP, uint16(tun.Port))
	l, err := startSlowLink(ctx, filepath.Join(netnsDir, f.lab.Controller.Netns), target, rtt)
	if err != nil {
		return err
	}
	f.link = l
	return nil
}

// tunnelStats are what the relay has carried so far; none at RTT 0.
func (f *fleet) tunnelStats() relay.Stats {
	if f.link == nil {
		return relay.Stats{}
	}
	return f.link.stats()
}

// withTunnel adds to s what the relay carried since before.
func withTunnel(s Sample, before, after relay.Stats) Sample {
	d := after.Sub(before)
	s.TunnelConns, s.TunnelTurns = d.Conns, d.Turns
	return s
}

// measure runs one tool's scenarios once, each from the state it needs.
func (f *fleet) measure(ctx context.Context, t Tool) ([]sampled, error) {
	switch t {
	case FwPush:
		return f.fwpush(ctx)
	case Ansible:
		s, err := f.ansible(ctx, "linear")
		return []sampled{{AnsibleRun, s}}, err
	case Mitogen:
		s, err := f.ansible(ctx, "mitogen_linear")
		return []sampled{{MitogenRun, s}}, err
	case OpenSSH:
		s, err := f.floor(ctx, kex)
		if err != nil {
			return nil, err
		}
		d, err := f.floor(ctx, kexDefault)
		return []sampled{{Floor, s}, {FloorDefault, d}}, err
	}
	return nil, fmt.Errorf("unknown tool %q", t)
}

// fwpush measures its four scenarios: from the permissive state a dry run
// (every host would change) and the first push (every host changes), then
// the re-run that finds nothing to do, then check. Watched by the servers
// part, it runs the first push and the re-run only.
func (f *fleet) fwpush(ctx context.Context) ([]sampled, error) {
	if err := f.reset(ctx); err != nil {
		return nil, err
	}
	var out []sampled
	for _, step := range []struct {
		scenario Scenario
		args     []string
		exit     int // the exit status that means the scenario did its job
		silent   bool
	}{
		// 2: changes pending. A dry run that finds nothing to change did
		// not measure what it claims to.
		{DryRun, []string{"run", "--dry-run", f.invPath}, 2, false},
		{FirstPush, []string{"run", "--no-verify", "--quiet", f.invPath}, 0, false},
		// --quiet prints nothing when every host is unchanged: output
		// means the re-run did work it should not have had to do.
		{Rerun, []string{"run", "--no-verify", "--quiet", f.invPath}, 0, true},
		{Check, []string{"check", f.invPath}, 0, false},
	} {
		// The servers part reports the first push and the re-run only. A
		// dry run changes nothing that the push after it depends on; run
		// there with check, once watched and once under strace, they cost
		// a fifth of its CPU time or more, for nothing.
		if f.watch != nil && !slices.Contains(serverScenarios, step.scenario) {
			continue
		}
		var stdout bytes.Buffer
		cmd := f.lab.Command(ctx, f.cfg.FwPush, step.args...)
		cmd.Stdout = &stdout
		before := f.tunnelStats()
		end, err := f.watchServers(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step.scenario, err)
		}
		s, err := f.launched(ctx, cmd, step.exit)
		s = withTunnel(s, before, f.tunnelStats())
		err = errors.Join(err, end(step.scenario))
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", step.scenario, err, tail(stdout.Bytes()))
		}
		if step.silent && stdout.Len() > 0 {
			return nil, fmt.Errorf("%s: expected every host unchanged, fwpush reported:\n%s", step.scenario, tail(stdout.Bytes()))
		}
		if step.scenario == FirstPush {
			if err := f.verify(ctx); err != nil {
				return nil, fmt.Errorf("after the first push: %w", err)
			}
		}
		out = append(out, sampled{step.scenario, s})
	}
	return out, nil
}

// measured runs cmd directly, for programs started too many at once for
// a launcher each (the OpenSSH loop), and returns its wall time and its
// CPU time as wait4 reports it: the process's own and that of the children
// it waited for. Its peak memory is not known (see launched). An exit
// status other than want is an error.
func measured(cmd *exec.Cmd, want int) (Sample, error) {
	var stderr bytes.Buffer
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == want && want != 0:
	case err != nil:
		return Sample{}, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, tail(stderr.Bytes()))
	case want != 0:
		return Sample{}, fmt.Errorf("%s: exit status 0, expected %d", strings.Join(cmd.Args, " "), want)
	}
	s := usage(cmd.ProcessState, wall)
	s.MaxRSS = 0
	return s, nil
}

// usage is a finished process's sample.
func usage(ps *os.ProcessState, wall time.Duration) Sample {
	s := Sample{Wall: wall, CPU: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		s.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
	return s
}

// tail is the end of a command's output, for error messages.
func tail(b []byte) string {
	const max = 4000
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return strings.TrimSpace(string(b))
}

// permissive is where every measured push starts: everything accepted,
// with a rule that already uses conntrack, as on a server that had a
// simple firewall before.
var permissive = [2]string{
	"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
	"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n",
}

// persisted are the files fwpush and the playbook leave on a host; without
// them a host is as fresh as before its first push.
var persisted = []string{"/etc/iptables/rules.v4", "/etc/iptables/rules.v6", "/var/lib/fwpush/applied"}

// hostLimit bounds the local processes the bench starts at once to reset
// or verify hosts.
const hostLimit = 16

// reset puts every host back into the permissive state, from the machine:
// the rules with iptables-restore inside the host, the files removed from
// the host's own directories.
func (f *fleet) reset(ctx context.Context) error {
	return f.eachHost(ctx, func(ctx context.Context, host string) error {
		for i, restore := range []string{"iptables-restore", "ip6tables-restore"} {
			cmd, err := f.lab.HostCommand(ctx, host, restore)
			if err != nil {
				return err
			}
			cmd.Stdin = strings.NewReader(permissive[i])
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("reset: %s: %w: %s", restore, err, out)
			}
		}
		// Inside the host: its files are in its own root filesystem.
		cmd, err := f.lab.HostCommand(ctx, host, "rm", append([]string{"-f"}, persisted...)...)
		if err != nil {
			return err
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("reset: rm: %w: %s", err, out)
		}
		return nil
	})
}

// saveScript prints a host's live filter tables, IPv4 then IPv6.
const saveScript = "iptables-save -t filter && echo '#fwbench ipv6' && ip6tables-save -t filter"

// verify proves that a push did its job on every host: the live rules are
// the rendered policy (in canonical form, as fwpush compares them) and
// /etc/iptables/rules.v4 and rules.v6 are the rendered files.
func (f *fleet) verify(ctx context.Context) error {
	return f.eachHost(ctx, func(ctx context.Context, host string) error {
		want := f.want[host]
		cmd, err := f.lab.HostCommand(ctx, host, "sh", "-c", saveScript)
		if err != nil {
			return err
		}
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("iptables-save: %w", err)
		}
		v4, v6, ok := strings.Cut(string(out), "#fwbench ipv6\n")
		if !ok {
			return fmt.Errorf("iptables-save: unexpected output:\n%s", tail(out))
		}
		for i, live := range []string{v4, v6} {
			if policy.Canonical(live) != policy.Canonical(want[i]) {
				return fmt.Errorf("the live IPv%d rules are not the policy:\n%s", []int{4, 6}[i], tail([]byte(live)))
			}
			cat, err := f.lab.HostCommand(ctx, host, "cat", persisted[i])
			if err != nil {
				return err
			}
			data, err := cat.Output()
			if err != nil {
				return fmt.Errorf("persisted rules: %s: %w", persisted[i], err)
			}
			if string(data) != want[i] {
				return fmt.Errorf("%s is not the policy", persisted[i])
			}
		}
		return nil
	})
}

// eachHost runs do for every host, hostLimit at a time, and joins the
// errors, each prefixed with its host.
func (f *fleet) eachHost(ctx context.Context, do func(ctx context.Context, host string) error) error {
	errs := make([]error, len(f.inv.Hosts))
	var g errgroup.Group
	g.SetLimit(hostLimit)
	for i, h := range f.inv.Hosts {
		g.Go(func() error {
			if err := do(ctx, h.Name); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", h.Name, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}
