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
	"slices"
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
	if err := prepareMachine(); err != nil {
		return err
	}
	if err := os.Mkdir(l.Dir, 0o700); err != nil {
		return err
	}
	authorized, err := l.writeClient()
	if err != nil {
		return fmt.Errorf("write %s: %w", l.Dir, err)
	}
	known := make([]string, len(l.Hosts))
	for i, n := range l.Hosts {
		if known[i], err = l.writeHost(n, authorized); err != nil {
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

	// Addresses, routes and sshd, host by host: most of the time goes to
	// starting processes, which overlaps well beyond the number of CPUs.
	pub, prv := l.segments()
	shared := sharedNets(pub, allPrivate(prv))
	nodes := l.nodes()
	errs := make([]error, len(nodes))
	var g errgroup.Group
	g.SetLimit(4 * runtime.NumCPU())
	for i, n := range nodes {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return nil
			}
			if err := configure(ctx, n, pub, prv[n.Site], shared); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
				return nil
			}
			if n.Port == 0 {
				return nil // the controller and the stranger run no sshd
			}
			if err := l.startSSHD(ctx, n); err != nil {
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
	lines := []string{"netns add " + l.Switch}
	for _, n := range l.nodes() {
		lines = append(lines, "netns add "+n.Netns)
	}
	if err := ipBatch(ctx, "", lines); err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}
	return nil
}

// wire builds the switch: the public bridge, a private bridge per site,
// and a veth pair per interface, whose inner end is created directly in
// its node's namespace under the inventory's interface name.
func (l *Lab) wire(ctx context.Context) error {
	lines := []string{"link add " + publicBridge + " type bridge forward_delay 0", "link set " + publicBridge + " up"}
	for _, site := range l.siteNames() {
		br := l.privateBridge(site)
		lines = append(lines, "link add "+br+" type bridge forward_delay 0", "link set "+br+" up")
	}
	for _, n := range l.nodes() {
		for _, p := range []struct {
			lk     *Link
			bridge string
		}{{n.Public, publicBridge}, {n.Private, l.privateBridge(n.Site)}} {
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

// siteNames are the sites whose private segments the lab has: "" alone
// for an inventory without [sites].
func (l *Lab) siteNames() []string {
	if l.Sites == nil {
		return []string{""}
	}
	return l.Sites
}

// privateBridge names a site's private bridge: privateBridge for the first
// (or only) site, then fwp-prv-s1, fwp-prv-s2...
func (l *Lab) privateBridge(site string) string {
	if i := slices.Index(l.Sites, site); i > 0 {
		return fmt.Sprintf("%s-s%d", privateBridge, i)
	}
	return privateBridge
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
// arguments, never in the script: $1 the host's directory, $2 sshd, $3 mount,
// $4 umount, $5 the host's name, which becomes its hostname (the process
// has a UTS namespace of its own too).
//
// The new mount namespace starts as a copy of the machine's. Its copies of
// /run/netns would keep every lab's namespaces alive after their own down,
// so /run is dropped whole and replaced by a fresh tmpfs, as a booted server
// has; /tmp gets one too, /sys is remounted to show the host's interfaces,
// and the host's own directories cover the machine's. mount -n keeps
// util-linux from recording anything in the machine's /run.
const launch = `set -e
dir=$1 sshd=$2 mount=$3 umount=$4
echo "$5" >/proc/sys/kernel/hostname
"$umount" -n -l /run/netns 2>/dev/null || :
"$umount" -n -l /run 2>/dev/null || :
"$mount" -n -t tmpfs -o mode=0755,nosuid,nodev,size=64m fwp-run /run
mkdir /run/sshd /run/fwpush
"$mount" -n -t tmpfs -o mode=1777,nosuid,nodev fwp-tmp /tmp
"$umount" -n -l /sys 2>/dev/null || :
"$mount" -n -t sysfs -o nosuid,nodev,noexec fwp-sys /sys
"$mount" -n --bind "$dir/root" /root
"$mount" -n --bind "$dir/etc-iptables" /etc/iptables
"$mount" -n --bind "$dir/var-lib-fwpush" /var/lib/fwpush
if [ -f "$dir/passwd" ]; then "$mount" -n --bind "$dir/passwd" /etc/passwd; fi
exec "$sshd" -D -e -f "$dir/sshd_config"
`

// launchTag is sh's $0 in launch: it marks the process, until it becomes
// sshd, as one of the lab's for down.
const launchTag = "fwpush-lab"

// startSSHD starts a host's sshd and waits until it listens: sshd writes
// its pid file only after binding its sockets.
func (l *Lab) startSSHD(ctx context.Context, n *Node) error {
	dir := l.hostDir(n)
	log, err := os.OpenFile(filepath.Join(dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	// Not tied to ctx: sshd outlives Up. It gets a session of its own so
	// that a terminal's ^C never reaches it.
	cmd := exec.Command(bin("nsenter"), "--net="+netnsPath(n.Netns), "--",
		bin("unshare"), "--mount", "--uts", "--propagation", "private", "--",
		"/bin/sh", "-c", launch, launchTag, dir, bin("sshd"), bin("mount"), bin("umount"), n.Name)
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
