package bench

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fwpush/fwpush/inventory"
)

// kex is the key exchange golang.org/x/crypto/ssh (fwpush) settles on with
// the lab's OpenSSH: its first choice, mlkem768x25519, is newer than
// Debian 12's sshd.
const kex = "curve25519-sha256,curve25519-sha256@libssh.org"

// kexDefault is what OpenSSH 9.2 (Debian 12) offers first by default:
// the floor is measured with it too, as an operator's plain ssh loop pays it.
const kexDefault = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org"

//go:embed ansible/push.yml
var playbook []byte

// sshSetup is how OpenSSH clients (ssh, Ansible) reach the lab as fwpush
// does: the tunnel's public address directly, every other host's private
// address through one connection to the tunnel (ProxyJump over a
// ControlMaster).
type sshSetup struct {
	config  string // ssh_config: control sockets, then the lab's own
	control string // directory of the control sockets
	tunnel  string // the tunnel's address, as ssh and ProxyJump take it
	jump    string // ProxyJump's argument: user@address:port
	ansible string // ansible.cfg
}

// setupSSH writes the ssh_config, the Ansible inventory and configuration
// and the playbook into the fleet's directory.
func (f *fleet) setupSSH() error {
	// Control sockets need a short path (sun_path is 108 bytes, %C is 40).
	control, err := os.MkdirTemp("", "fwb")
	if err != nil {
		return err
	}
	tun := f.inv.Tunnel()
	f.ssh = sshSetup{
		config:  filepath.Join(f.dir, "ssh_config"),
		control: control,
		tunnel:  tun.PublicIP.String(),
		jump:    tun.User + "@" + net.JoinHostPort(tun.PublicIP.String(), strconv.Itoa(tun.Port)),
		ansible: filepath.Join(f.dir, "ansible.cfg"),
	}
	// The first value ssh finds wins: the control settings come before the
	// lab's file. Every ssh -W that ProxyJump starts reads this file too
	// (ssh passes -F on), so it rides on the tunnel's master. The key
	// exchange is the one fwpush's client negotiates with these servers:
	// OpenSSH's default (sntrup761x25519) costs each client and server
	// about 0.1 s of CPU more per connection.
	conf := fmt.Sprintf("Host *\n  ControlMaster auto\n  ControlPath %s/%%C\n  ControlPersist no\n  KexAlgorithms %s\n\nInclude %s\n",
		control, kex, f.lab.SSHConfig)
	if err := os.WriteFile(f.ssh.config, []byte(conf), 0o644); err != nil {
		return err
	}
	var hosts strings.Builder
	fmt.Fprintf(&hosts, "all:\n  vars:\n    policies: %q\n    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n", f.policies)
	for _, h := range f.inv.Hosts {
		fmt.Fprintf(&hosts, "    %s:\n      ansible_host: %q\n      ansible_port: %d\n      ansible_user: %q\n", h.Name, f.address(h), h.Port, h.User)
		if h.Name != tun.Name {
			fmt.Fprintf(&hosts, "      ansible_ssh_common_args: %q\n", "-o ProxyJump="+f.ssh.jump)
		}
	}
	if err := os.WriteFile(filepath.Join(f.dir, "hosts.yml"), []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.dir, "push.yml"), playbook, 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`[defaults]
inventory = %[1]s/hosts.yml
forks = %[2]d
timeout = 60
gathering = explicit
host_key_checking = True
retry_files_enabled = False
nocolor = True
local_tmp = %[1]s/ansible-local
strategy_plugins = %[3]s

[ssh_connection]
pipelining = True
ssh_args = -F %[4]s -o ControlMaster=auto -o ControlPersist=60s
control_path_dir = %[5]s
`, f.dir, f.parallel, mitogenStrategies(), f.ssh.config, control)
	return os.WriteFile(f.ssh.ansible, []byte(cfg), 0o644)
}

// address is where fwpush reaches a host: the tunnel at its public
// address, every other host at its private one.
func (f *fleet) address(h *inventory.Host) string {
	if h.Name == f.inv.SSH.Tunnel {
		return h.PublicIP.String()
	}
	return h.PrivateIP.String()
}

// ansible measures one playbook run with strategy from the permissive
// state, timing the tunnel's master connection with it, and proves the
// hosts were changed: a failed run fails the bench.
func (f *fleet) ansible(ctx context.Context, strategy string) (Sample, error) {
	if err := f.reset(ctx); err != nil {
		return Sample{}, err
	}
	defer f.stopMasters()
	var stdout bytes.Buffer
	scenario := map[string]Scenario{"linear": AnsibleRun, "mitogen_linear": MitogenRun}[strategy]
	end, err := f.watchServers(ctx)
	if err != nil {
		return Sample{}, err
	}
	before := f.tunnelStats()
	start := time.Now()
	master, err := f.startMaster(ctx)
	if err != nil {
		return Sample{}, errors.Join(err, end(scenario))
	}
	cmd := f.lab.Command(ctx, "ansible-playbook", filepath.Join(f.dir, "push.yml"))
	cmd.Env = append(cmd.Env, "ANSIBLE_CONFIG="+f.ssh.ansible, "ANSIBLE_STRATEGY="+strategy)
	cmd.Stdout = &stdout
	s, err := f.launched(ctx, cmd, 0)
	if err != nil {
		f.stopMasters()
		return Sample{}, errors.Join(fmt.Errorf("%w\n%s", err, ansibleErrors(stdout.Bytes())), end(scenario))
	}
	s.Wall = time.Since(start)
	// The masters' goodbyes belong to this run's tunnel traffic, and to
	// its servers' side.
	f.stopMasters()
	s = withTunnel(s.plus(master), before, f.tunnelStats())
	if err := end(scenario); err != nil {
		return Sample{}, err
	}
	if err := f.verify(ctx); err != nil {
		return Sample{}, fmt.Errorf("after ansible-playbook (%s): %w\n%s", strategy, err, tail(stdout.Bytes()))
	}
	return s, nil
}

// floor measures what SSH alone costs for the re-run's work: one master
// connection to the tunnel, then one ssh per host through it, parallel at
// a time, each running iptables-save, each connection's key exchange
// offering kexs.
func (f *fleet) floor(ctx context.Context, kexs string) (Sample, error) {
	defer f.stopMasters()
	scenario := map[string]Scenario{kex: Floor, kexDefault: FloorDefault}[kexs]
	end, err := f.watchServers(ctx)
	if err != nil {
		return Sample{}, err
	}
	before := f.tunnelStats()
	start := time.Now()
	total, err := f.startMaster(ctx)
	if err != nil {
		return Sample{}, errors.Join(err, end(scenario))
	}
	var mu sync.Mutex
	errs := make([]error, len(f.inv.Hosts))
	var g errgroup.Group
	g.SetLimit(f.parallel)
	for i, h := range f.inv.Hosts {
		g.Go(func() error {
			// -S none: this ssh is no master of its own; the ssh -W of
			// its ProxyJump uses the tunnel's.
			args := []string{"-F", f.ssh.config, "-S", "none", "-o", "KexAlgorithms=" + kexs}
			if h.Name != f.inv.SSH.Tunnel {
				args = append(args, "-J", f.ssh.jump)
			}
			args = append(args, "-p", strconv.Itoa(h.Port), "-l", h.User, f.address(h), "iptables-save")
			var stdout bytes.Buffer
			cmd := f.lab.Command(ctx, "ssh", args...)
			cmd.Stdout = &stdout
			s, err := measured(cmd, 0)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("host %s: %w", h.Name, err)
			case !bytes.Contains(stdout.Bytes(), []byte("*filter")):
				errs[i] = fmt.Errorf("host %s: iptables-save printed no filter table: %s", h.Name, tail(stdout.Bytes()))
			}
			mu.Lock()
			total = total.plus(s)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	total.Wall = time.Since(start)
	f.stopMasters()
	total = withTunnel(total, before, f.tunnelStats())
	return total, errors.Join(append(errs, end(scenario))...)
}

// startMaster opens the master connection to the tunnel that the ProxyJumps
// share; ssh -f returns once it is authenticated and listening.
func (f *fleet) startMaster(ctx context.Context) (Sample, error) {
	tun := f.inv.Tunnel()
	cmd := f.lab.Command(ctx, "ssh", "-F", f.ssh.config, "-M", "-N", "-f",
		"-p", strconv.Itoa(tun.Port), "-l", tun.User, f.ssh.tunnel)
	s, err := measured(cmd, 0)
	if err != nil {
		return Sample{}, fmt.Errorf("tunnel master: %w", err)
	}
	return s, nil
}

// stopMasters ends every master connection whose socket is in the control
// directory (the tunnel's, and those Ansible's ControlPersist left), so the
// next run starts cold, as fwpush does.
func (f *fleet) stopMasters() {
	entries, _ := os.ReadDir(f.ssh.control)
	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Go(func() {
			sock := filepath.Join(f.ssh.control, e.Name())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+sock, "-O", "exit", "master").Run()
		})
	}
	wg.Wait()
}

// mitogenStrategies is the directory of Mitogen's Ansible strategy plugins,
// or "" when Mitogen is not installed.
func mitogenStrategies() string {
	out, err := exec.Command("python3", "-c", "import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "plugins", "strategy")
}

// ansibleErrors picks from a playbook's output the lines that say what
// failed, which its recap at the end does not.
func ansibleErrors(out []byte) string {
	var b []byte
	for line := range bytes.Lines(out) {
		if bytes.HasPrefix(line, []byte("fatal:")) || bytes.Contains(line, []byte("ERROR!")) || bytes.Contains(line, []byte("[WARNING]")) {
			b = append(b, line...)
		}
	}
	if len(b) == 0 {
		return tail(out)
	}
	return tail(b)
}
