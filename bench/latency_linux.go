package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fwpush/fwpush/bench/relay"
)

// relayMark is the socket mark of the relay's own connections to the
// target, which the REDIRECT rule lets through.
const relayMark = 0x66770

// slowLink puts a relay (bench/relay) between every program of a network
// namespace and one address: a REDIRECT rule in the namespace's nat table
// sends every new TCP connection to the address, but the relay's own
// (marked) ones, to the relay, which listens on the namespace's loopback
// and dials the address with the mark. No program needs to know: fwpush,
// ssh and Ansible all dial the tunnel's address as before.
type slowLink struct {
	relay   *relay.Relay
	netns   string   // the namespace's path
	iptRule []string // the rule, as iptables -A takes it
	ipt     string   // iptables or ip6tables
	cancel  context.CancelFunc
	done    chan error
}

// startSlowLink makes every TCP connection from the network namespace at
// netns to target go through a relay that adds rtt to its round trips.
func startSlowLink(ctx context.Context, netns string, target netip.AddrPort, rtt time.Duration) (*slowLink, error) {
	if rtt <= 0 {
		return nil, fmt.Errorf("slow link: round-trip time %v: want more than 0", rtt)
	}
	loopback, ipt := "127.0.0.1:0", "iptables"
	if target.Addr().Is6() {
		loopback, ipt = "[::1]:0", "ip6tables"
	}
	var ln net.Listener
	err := inNetns(netns, func() (err error) {
		ln, err = net.Listen("tcp", loopback)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("slow link: listen in %s: %w", netns, err)
	}
	r := &relay.Relay{Delay: rtt / 2, Dial: func(ctx context.Context) (net.Conn, error) {
		return dialMarked(ctx, netns, target)
	}}
	port := ln.Addr().(*net.TCPAddr).Port
	s := &slowLink{relay: r, netns: netns, ipt: ipt, done: make(chan error, 1), iptRule: []string{
		"OUTPUT", "-p", "tcp", "-d", target.Addr().String(), "--dport", strconv.Itoa(int(target.Port())),
		"-m", "mark", "!", "--mark", fmt.Sprintf("%#x", relayMark),
		"-j", "REDIRECT", "--to-ports", strconv.Itoa(port),
	}}
	var sctx context.Context
	sctx, s.cancel = context.WithCancel(context.Background())
	go func() { s.done <- r.Serve(sctx, ln) }()
	if err := s.iptables(ctx, "-A"); err != nil {
		s.cancel()
		<-s.done
		return nil, err
	}
	return s, nil
}

// stats are what the relay has carried so far.
func (s *slowLink) stats() relay.Stats { return s.relay.Stats() }

// close removes the rule, then stops the relay and the connections it
// still carries.
func (s *slowLink) close(ctx context.Context) error {
	err := s.iptables(ctx, "-D")
	s.cancel()
	if serr := <-s.done; !errors.Is(serr, context.Canceled) {
		err = errors.Join(err, serr)
	}
	return err
}

// iptables adds (-A) or deletes (-D) the REDIRECT rule in the namespace.
func (s *slowLink) iptables(ctx context.Context, op string) error {
	args := append([]string{"--net=" + s.netns, "--", sbin(s.ipt), "-w", "-t", "nat", op}, s.iptRule...)
	if out, err := exec.CommandContext(ctx, sbin("nsenter"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("slow link: %s %s: %w: %s", s.ipt, op, err, out)
	}
	return nil
}

// dialMarked connects to target from the namespace at netns with the
// relay's mark, which the REDIRECT rule skips.
func dialMarked(ctx context.Context, netns string, target netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, relayMark)
		}); err != nil {
			return err
		}
		return serr
	}}
	var c net.Conn
	err := inNetns(netns, func() (err error) {
		c, err = d.DialContext(ctx, "tcp", target.String())
		return err
	})
	return c, err
}

// inNetns runs f on a thread switched into the network namespace at path,
// so that the sockets f creates belong to it (they can be used from any
// thread afterwards). The thread is switched back; if that fails it stays
// locked and the runtime ends it, so nothing else ever runs there.
func inNetns(path string, f func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter %s: %w", path, err)
			return
		}
		err = f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// sbin finds a system program that may live outside $PATH.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if p := d + "/" + name; isExecutable(p) {
			return p
		}
	}
	return name
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
