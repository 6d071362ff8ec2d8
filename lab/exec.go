package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fwpush/fwpush/lockfile"
)

// The variables Command sets so that fwpush in the controller uses the
// lab's key and known_hosts with the inventory unchanged.
const (
	EnvIdentity   = "FWPUSH_IDENTITY"
	EnvKnownHosts = "FWPUSH_KNOWN_HOSTS"
)

// ProbeTimeout is how long Probe waits for an answer before it calls a
// port filtered.
const ProbeTimeout = 1500 * time.Millisecond

// Command returns a command that runs name in the controller's network
// namespace with FWPUSH_IDENTITY and FWPUSH_KNOWN_HOSTS set to the lab's
// client key and known_hosts, and FWPUSH_STATE_DIR to a directory of the
// lab's (what a run keeps for the next: see lockfile.StateDir), which
// goes with the lab. The caller sets its I/O and runs it.
func (l *Lab) Command(ctx context.Context, name string, arg ...string) *exec.Cmd {
	args := append([]string{"--net=" + netnsPath(l.Controller.Netns), "--", name}, arg...)
	cmd := exec.CommandContext(ctx, bin("nsenter"), args...)
	cmd.Env = append(os.Environ(), EnvIdentity+"="+l.Identity, EnvKnownHosts+"="+l.KnownHosts,
		lockfile.EnvStateDir+"="+filepath.Join(l.Dir, "controller-state"))
	return cmd
}

// HostCommand returns a command that runs name inside host as its sshd
// sees it: in its network, mount and UTS namespaces, on its own root
// filesystem, as root; name is found in the host's filesystem.
func (l *Lab) HostCommand(ctx context.Context, host, name string, arg ...string) (*exec.Cmd, error) {
	n, err := l.Host(host)
	if err != nil {
		return nil, err
	}
	pid, err := l.sshdPid(n)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--target", fmt.Sprint(pid), "--net", "--mount", "--uts", "--wd", "--", name}, arg...)
	return exec.CommandContext(ctx, bin("nsenter"), args...), nil
}

// HostRoot returns host's root filesystem as a path on the machine, the
// root of its sshd (/proc/PID/root): what the host sees, read without
// starting anything in it. It is valid until the host's sshd ends.
func (l *Lab) HostRoot(host string) (string, error) {
	n, err := l.Host(host)
	if err != nil {
		return "", err
	}
	pid, err := l.sshdPid(n)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/%d/root", pid), nil
}

// sshdPid returns the pid of a host's running sshd.
func (l *Lab) sshdPid(n *Node) (int, error) {
	cfg := filepath.Join(l.hostDir(n), "sshd_config")
	pid := readPid(filepath.Join(l.hostDir(n), "sshd.pid"))
	if !alive(pid, cfg) {
		return 0, fmt.Errorf("lab %s: host %s: sshd is not running (bring the lab up again)", l.Name, n.Name)
	}
	return pid, nil
}

// Exec runs a command in the controller (see Command) and returns its
// stdout; a failure is a *CommandError holding its stderr.
func (l *Lab) Exec(ctx context.Context, name string, arg ...string) ([]byte, error) {
	return output(l.Command(ctx, name, arg...))
}

// Shell runs a command inside host (see HostCommand) and returns its
// stdout; a failure is a *CommandError holding its stderr.
func (l *Lab) Shell(ctx context.Context, host, name string, arg ...string) ([]byte, error) {
	cmd, err := l.HostCommand(ctx, host, name, arg...)
	if err != nil {
		return nil, err
	}
	return output(cmd)
}

// DialContext connects to address from node from (a host name, Controller
// or Stranger), as a program running there would: the socket is created in
// that node's network namespace and its firewall applies. address must be
// an IP literal with a port; the connection can be used from any goroutine.
// Tests use it to reach the lab in-process, as from the controller.
func (l *Lab) DialContext(ctx context.Context, from, network, address string) (net.Conn, error) {
	n, err := l.Node(from)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("lab %s: dial from %s: %q is not an IP address and port", l.Name, from, address)
	}
	ns, err := os.Open(netnsPath(n.Netns))
	if err != nil {
		return nil, fmt.Errorf("lab %s: dial from %s: %w", l.Name, from, err)
	}
	defer ns.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The dial runs on a thread locked to this goroutine and switched
		// into the node's namespace, then switched back. If switching back
		// fails the thread stays locked, and the runtime ends it with the
		// goroutine, so no other goroutine ever runs in a lab's namespace
		// (and no thread of this process keeps one alive). The socket
		// belongs to the namespace it was created in, whichever thread
		// uses it later.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: fmt.Errorf("dial from %s: %w", from, err)}
			return
		}
		defer orig.Close()
		if err := setNetns(int(ns.Fd())); err != nil {
			done <- result{err: fmt.Errorf("dial from %s: enter %s: %w", from, n.Netns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if setNetns(int(orig.Fd())) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	r := <-done
	return r.conn, r.err
}

// Reachability is what a probe found.
type Reachability int

// Probe results.
const (
	// Filtered: no answer in time, or the way is closed (no route, an ICMP
	// "prohibited", a local firewall's refusal).
	Filtered Reachability = iota
	// Reachable: the connection was accepted or refused by the target,
	// so the packet got there.
	Reachable
)

func (r Reachability) String() string {
	if r == Reachable {
		return "reachable"
	}
	return "filtered"
}

// Probe tries a TCP connection from node from to addr:port and tells
// whether the packet got through, waiting at most ProbeTimeout.
func (l *Lab) Probe(ctx context.Context, from string, addr netip.Addr, port int) (Reachability, error) {
	if port < 1 || port > 65535 {
		return Filtered, fmt.Errorf("lab %s: probe: port %d is out of range 1-65535", l.Name, port)
	}
	dctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	if _, err := l.Node(from); err != nil {
		return Filtered, err
	}
	c, err := l.DialContext(dctx, from, "tcp", hostPort(addr, port))
	switch {
	case err == nil:
		c.Close()
		return Reachable, nil
	case ctx.Err() != nil:
		return Filtered, ctx.Err()
	case errors.Is(err, unix.ECONNREFUSED):
		return Reachable, nil
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH),
		errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return Filtered, nil
	}
	return Filtered, fmt.Errorf("lab %s: probe %s from %s: %w", l.Name, hostPort(addr, port), from, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
