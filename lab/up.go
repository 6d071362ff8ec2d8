package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Bridge names inside the switch namespace.
const (
	publicBridge  = Prefix + "-pub"
	privateBridge = Prefix + "-prv"
)

// readyTimeout bounds how long one sshd may take to listen.
const readyTimeout = 20 * time.Second

// Up builds the lab: namespaces, bridges, addresses and routes, one sshd per
// host, the client key and known_hosts. A lab of the same name that is up
// already is taken down first, so Up also rebuilds. When Up fails, or ctx is
// cancelled half-way, it removes whatever it had created before returning.
// Missing tools are installed with apt-get first (see Prerequisites).
func (l *Lab) Up(ctx context.Context) error {
	if err := CheckRoot(); err != nil {
		return err
	}
	if err := Prerequisites(ctx, io.Discard); err != nil {
		return fmt.Errorf("lab %s: prerequisites: %w", l.Name, err)
	}
	unlock, err := lockRoot(ctx)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	defer unlock()
	if err := down(l.Name, false); err != nil {
		return fmt.Errorf("lab %s: remove the previous lab: %w", l.Name, err)
	}
	if err := l.up(ctx); err != nil {
		if ctx.Err() != nil {
			// What failed after the interruption is only its echo.
			err = fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if derr := down(l.Name, true); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", derr))
		}
		return fmt.Errorf("lab %s: up: %w", l.Name, err)
	}
	return nil
}

func (l *Lab) up(ctx context.Context) error {
	if err := checkRootfs(); err != nil {
		return err
	}
	if err := prepareMachine(); err != nil {
		return err
	}
	if err := ensureRepo(ctx, l.packages()); err != nil {
		return fmt.Errorf("local apt repository %s: %w", repoDir, err)
	}
	if err := os.Mkdir(l.Dir, 0o700); err != nil {
		return err
	}
	authorized, err := l.writeClient()
	if err != nil {
		return fmt.Errorf("write %s: %w", l.Dir, err)
	}
	users := make([]string, len(l.Hosts))
	for i, n := range l.Hosts {
		users[i] = n.User
	}
	acc, err := planAccounts(users)
	if err != nil {
		return err
	}
	known := make([]string, len(l.Hosts))
	for i, n := range l.Hosts {
		if known[i], err = l.writeHost(n); err != nil {
			return fmt.Errorf("host %s: write %s: %w", n.Name, l.hostDir(n), err)
		}
	}
	if err := os.WriteFile(l.KnownHosts, []byte(strings.Join(known, "")), 0o644); err != nil {
		return err
	}
	if err := l.createNetns(ctx); err != nil {
		return err
	}
	if err := l.wire(ctx); err != nil {
		return err
	}

	// Filesystem, addresses, routes and sshd, host by host: most of the
	// time goes to starting processes, which overlaps well beyond the
	// number of CPUs.
	pub, prv := l.segments()
	shared := sharedNets(pub, prv)
	nodes := append([]*Node{l.Controller, l.Stranger}, l.Hosts...)
	errs := make([]error, len(nodes))
	var g errgroup.Group
	g.SetLimit(4 * runtime.NumCPU())
	for i, n := range nodes {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return nil
			}
			if err := configure(ctx, n, pub, prv, shared); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
				return nil
			}
			if n.Port == 0 {
				return nil // the controller and the stranger run no sshd
			}
			if err := l.writeRootfs(n, acc, authorized); err != nil {
				errs[i] = fmt.Errorf("host %s: write its filesystem in %s: %w", n.Name, l.fsDir(n), err)
				return nil
			}
			if err := l.startSSHD(ctx, n, false); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", n.Name, err)
				return nil
			}
			if err := l.provision(ctx, n); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", n.Name, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// createNetns creates every namespace of the lab with one ip(8) process.
func (l *Lab) createNetns(ctx context.Context) error {
	lines := []string{"netns add " + l.Switch, "netns add " + l.Controller.Netns, "netns add " + l.Stranger.Netns}
	for _, n := range l.Hosts {
		lines = append(lines, "netns add "+n.Netns)
	}
	if err := ipBatch(ctx, "", lines); err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}
	return nil
}

// wire builds the switch: the two bridges and a veth pair per interface,
// whose inner end is created directly in its node's namespace under the
// inventory's interface name.
func (l *Lab) wire(ctx context.Context) error {
	lines := []string{
		"link add " + publicBridge + " type bridge forward_delay 0",
		"link add " + privateBridge + " type bridge forward_delay 0",
		"link set " + publicBridge + " up",
		"link set " + privateBridge + " up",
	}
	for _, n := range append([]*Node{l.Controller, l.Stranger}, l.Hosts...) {
		for _, p := range []struct {
			lk     *Link
			bridge string
		}{{n.Public, publicBridge}, {n.Private, privateBridge}} {
			if p.lk == nil {
				continue
			}
			lines = append(lines,
				fmt.Sprintf("link add %s type veth peer name %s netns %s", p.lk.Peer, p.lk.Iface, n.Netns),
				fmt.Sprintf("link set %s master %s up", p.lk.Peer, p.bridge))
		}
	}
	if err := ipBatch(ctx, l.Switch, lines); err != nil {
		return fmt.Errorf("wire the switch: %w", err)
	}
	return nil
}

// configure gives a node its addresses and routes and brings its links up.
func configure(ctx context.Context, n *Node, pub, prv []netip.Addr, shared map[netip.Prefix]bool) error {
	lines := []string{"link set lo up"}
	var routes []string
	for _, p := range []struct {
		lk  *Link
		seg []netip.Addr
	}{{n.Public, pub}, {n.Private, prv}} {
		if p.lk == nil {
			continue
		}
		addrs, r := linkConfig(p.lk, p.seg, shared)
		lines = append(lines, addrs...)
		lines = append(lines, "link set "+p.lk.Iface+" up")
		routes = append(routes, r...)
	}
	if err := ipBatch(ctx, n.Netns, append(lines, routes...)); err != nil {
		return fmt.Errorf("addresses and routes: %w", err)
	}
	return nil
}

// ipBatch runs ip(8) commands, one a line, in namespace netns ("" for the
// machine's, used only to create the lab's namespaces). Every word in them
// is a validated name or an address, never free text.
func ipBatch(ctx context.Context, netns string, lines []string) error {
	var args []string
	if netns != "" {
		args = append(args, "-n", netns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.CommandContext(ctx, bin("ip"), args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	// If Up is killed, ip must not go on building a lab nobody will
	// record: down could miss what it adds after down has looked.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	dieWithParent(cmd.SysProcAttr)
	_, err := output(cmd)
	return err
}

// launch is the start of every host's sshd, run by sh inside the host's
// network namespace and a fresh private mount namespace. Values arrive as
// arguments, never in the script: $1 the host's directory, $2 its
// filesystem's directory (upper, work, root), $3 the lab's state root, $4
// the local apt repository, $5 1 when the host reboots, $6 the boot script,
// $7 the utmp record, $8 sshd, $9 the host's name, which becomes its
// hostname (the process has a UTS namespace of its own too).
//
// The new mount namespace starts as a copy of the machine's. The host's
// root is an overlay of the machine's / (lower, read-only: its submounts
// are not part of it) and the host's upper directory; proc, sysfs (which
// shows the host's interfaces), /dev and fresh tmpfs for /dev/shm, /run and
// /tmp are mounted into it, as a booted server has them. The lab's state
// root is covered by a tmpfs that holds only the host's own directory (its
// sshd_config, host key and pid file) and the repository, read-only, at
// their paths. pivot_root then makes the overlay the namespace's root and
// the machine's mounts, its copies of /run/netns among them (which would
// keep every lab's namespaces alive after their own down), are detached.
// mount -n keeps util-linux from recording anything in /run.
const launch = `set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
dir=$1 fs=$2 lab=$3 repo=$4 boot=$5 bootscript=$6 utmp=$7 sshd=$8
echo "$9" >/proc/sys/kernel/hostname
mount -n -t overlay fwp-root -o "lowerdir=/,upperdir=$fs/upper,workdir=$fs/work,volatile" "$fs/root"
cd "$fs/root"
mount -n -t proc -o nosuid,nodev,noexec fwp-proc proc
mount -n -t sysfs -o nosuid,nodev,noexec fwp-sys sys
mount -n --rbind /dev dev
mount -n -t tmpfs -o mode=1777,nosuid,nodev fwp-shm dev/shm
mount -n -t tmpfs -o mode=0755,nosuid,nodev,size=64m fwp-run run
mount -n -t tmpfs -o mode=1777,nosuid,nodev fwp-tmp tmp
mount -n -t tmpfs -o mode=0755,size=1m fwp-lab "./$lab"
mkdir -p "./$dir" "./$repo" run/sshd
mount -n --bind "$dir" "./$dir"
mount -n --bind -o ro "$repo" "./$repo"
printf "$utmp" >run/utmp
pivot_root . .
umount -n -l .
cd /
if [ "$boot" = 1 ] && ! sh -c "$bootscript" boot >"$dir/boot.log" 2>&1; then
	: >"$dir/boot.failed"
fi
exec "$sshd" -D -e -f "$dir/sshd_config"
`

// bootScript is what a reboot runs before sshd starts: the kernel's rules
// wiped as a reboot leaves them (no rules, every policy ACCEPT, both
// families, both iptables backends and nftables' own), then the firewall
// services a boot starts when they are enabled: netfilter-persistent
// loading /etc/iptables/rules.v4 and rules.v6, nftables loading
// /etc/nftables.conf, ufw. Each runs only if enabled (a systemd wants link,
// or an rcS.d/rc2.d start link), in that order; a failure is reported and
// the next one runs, as systemd goes on booting.
const bootScript = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if command -v nft >/dev/null 2>&1; then nft flush ruleset; fi
for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
	command -v "$save" >/dev/null 2>&1 || continue
	"$save" 2>/dev/null | awk '/^\*/ || /^COMMIT/ { print } /^:/ && $2 != "-" { print $1, "ACCEPT" }' | "${save%-save}-restore" -w
done
enabled() {
	for f in /etc/systemd/system/*.wants/"$1".service /etc/rcS.d/S[0-9][0-9]"$1" /etc/rc2.d/S[0-9][0-9]"$1"; do
		[ -e "$f" ] && return 0
	done
	return 1
}
status=0
if enabled netfilter-persistent && command -v netfilter-persistent >/dev/null 2>&1; then
	echo "boot: netfilter-persistent start"
	netfilter-persistent start || status=1
fi
if enabled nftables && [ -r /etc/nftables.conf ] && command -v nft >/dev/null 2>&1; then
	echo "boot: nft -f /etc/nftables.conf"
	nft -f /etc/nftables.conf || status=1
fi
if enabled ufw && [ -x /lib/ufw/ufw-init ]; then
	echo "boot: ufw-init start"
	/lib/ufw/ufw-init start || status=1
fi
exit $status
`

// launchTag is sh's $0 in launch: it marks the process, until it becomes
// sshd, as one of the lab's for down.
const launchTag = "fwpush-lab"

// startSSHD starts a host's sshd in its own root filesystem and waits until
// it listens: sshd writes its pid file only after binding its sockets. With
// boot set, the host boots first (see bootScript).
func (l *Lab) startSSHD(ctx context.Context, n *Node, boot bool) error {
	dir := l.hostDir(n)
	log, err := os.OpenFile(filepath.Join(dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	bootFlag := "0"
	if boot {
		bootFlag = "1"
	}
	// Not tied to ctx: sshd outlives Up. It gets a session of its own so
	// that a terminal's ^C never reaches it.
	cmd := exec.Command(bin("nsenter"), "--net="+netnsPath(n.Netns), "--",
		bin("unshare"), "--mount", "--uts", "--propagation", "private", "--",
		"/bin/sh", "-c", launch, launchTag, dir, l.fsDir(n), Root, repoDir, bootFlag, bootScript, utmp(), bin("sshd"), n.Name)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	// nsenter, unshare and sh each exec the next, so the process started
	// here is sshd itself. Waiting for it reaps it when down kills it, as
	// long as this process lives (tests); after that init does.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	pidFile := filepath.Join(dir, "sshd.pid")
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if readPid(pidFile) == cmd.Process.Pid {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("sshd exited: %s", logTail(filepath.Join(dir, "sshd.log")))
		case <-deadline.C:
			return fmt.Errorf("sshd did not listen within %s: %s", readyTimeout, logTail(filepath.Join(dir, "sshd.log")))
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// provisionScript shapes a host that is up, as its options ask: $1 1 to
// purge iptables-persistent and netfilter-persistent, $2 1 to set the login
// user's password (user:password on stdin, for chpasswd), then the
// packages to install from the local repository. Package names are
// validated; nothing else arrives on the command line.
const provisionScript = `set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
purge=$1 password=$2
shift 2
if [ "$purge" = 1 ]; then
	dpkg --purge iptables-persistent netfilter-persistent
fi
if [ $# -gt 0 ]; then
	apt-get -qq update
	# Files the lab wrote win over the packages' own (/etc/nftables.conf).
	apt-get -qq -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "$@"
fi
if [ "$password" = 1 ]; then
	chpasswd
fi
`

// provision runs provisionScript in a host that has options needing it.
func (l *Lab) provision(ctx context.Context, n *Node) error {
	o := n.Options
	if !o.NoPersistent && len(o.Packages) == 0 && o.Password == "" {
		return nil
	}
	purge, password := "0", "0"
	if o.NoPersistent {
		purge = "1"
	}
	var stdin string
	if o.Password != "" && n.User != "" {
		password = "1"
		stdin = n.User + ":" + o.Password + "\n"
	}
	args := append([]string{"-c", provisionScript, "provision", purge, password}, o.Packages...)
	cmd, err := l.HostCommand(ctx, n.Name, "/bin/sh", args...)
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	if _, err := output(cmd); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			// The script says nothing; what apt and dpkg said last does.
			ce.Args = []string{"provision"}
			ce.Stderr = lastLines(append(out.Bytes(), ce.Stderr...), 12)
		}
		return err
	}
	return nil
}

// lastLines returns the last n lines of out.
func lastLines(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// logTail returns the last lines of a log, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(no output)"
	}
	return strings.Join(lines, "; ")
}

// CommandError is a command that failed, with what it wrote on stderr.
type CommandError struct {
	Args   []string
	Stderr []byte
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.Join(e.Args, " ") + ": " + e.Err.Error()
	if s := strings.TrimSpace(string(e.Stderr)); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// output runs cmd and returns its stdout; a failure is a *CommandError.
func output(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Args: cmd.Args, Stderr: stderr.Bytes(), Err: err}
	}
	return stdout.Bytes(), nil
}
