package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
)

// Options configure how a JumpDialer connects and authenticates.
type Options struct {
	// User logs in on targets that name no user; "" means inventory.DefaultUser.
	User string
	// Identity is the private key file of every target ("~/" is
	// expanded); "" means each target's Identities, and for a target
	// that names none inventory.DefaultIdentity. It may be missing, or
	// protected by a passphrase, when ssh-agent ($SSH_AUTH_SOCK) holds a
	// key: keys come from both.
	Identity string
	// KnownHosts is the known_hosts file host keys are verified against
	// and AcceptNew records new keys in ("~/" is expanded); "" means
	// inventory.DefaultKnownHosts.
	KnownHosts string
	// MoreKnownHosts are known_hosts files read too, never written: the
	// system-wide /etc/ssh/ssh_known_hosts, say. Missing ones are skipped.
	MoreKnownHosts []string
	// HashKnownHosts records new keys under hashed addresses, as
	// OpenSSH's HashKnownHosts does. A KnownHosts file that already holds
	// hashed addresses gets hashed ones whatever this says.
	HashKnownHosts bool
	// SSHConfig is OpenSSH's client configuration, read for what the
	// inventory leaves out (see SSHConfig); nil reads none. The dialer
	// does not consult it: whoever builds Targets and Options does.
	SSHConfig *SSHConfig
	// AcceptNew trusts and records the key of a host known_hosts does not
	// know, as OpenSSH's StrictHostKeyChecking=accept-new. A changed key is
	// never accepted.
	AcceptNew bool
	// Timeout bounds each connection: TCP connect or channel through the
	// tunnel, plus the SSH handshake. It is also the keepalive interval: a
	// connection that leaves a keepalive unanswered for Timeout is closed.
	// 0 means inventory.DefaultTimeout.
	Timeout time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// WrapConn, when set, is given each TCP connection to the tunnel host
	// once it is connected, and the SSH handshake runs on what it
	// returns: tests count the round trips of a run with it
	// (CountRoundTrips).
	WrapConn func(net.Conn) net.Conn
}

// ErrTunnelDown is wrapped by errors that happen because the connection to
// the tunnel host has ended. Reconnect, then dial again.
var ErrTunnelDown = errors.New("tunnel connection is down")

// errDialerClosed is returned after JumpDialer.Close.
var errDialerClosed = fmt.Errorf("ssh dialer closed: %w", net.ErrClosed)

// JumpDialer reaches the fleet the way OpenSSH's ProxyJump does: it holds
// one SSH connection to the tunnel host, and every other host is an SSH
// connection carried by a direct-tcpip channel of that one connection.
// The tunnel host's own sessions run on the tunnel connection itself.
// It is safe for concurrent use.
type JumpDialer struct {
	tunnel  Target
	opts    Options
	timeout time.Duration
	log     *slog.Logger
	known   *knownHosts
	auth    *auth

	reconnect sync.Mutex // serialises Reconnect
	mu        sync.RWMutex
	tc        *sshConn
	closed    bool
}

var _ Dialer = (*JumpDialer)(nil)

// sshConn is one SSH connection and a way to tell that it has ended
// without waiting for an operation on it to fail.
type sshConn struct {
	client *goph.Client
	done   chan struct{} // closed when the connection has ended
	// rt counts the round trips of the stream the connection runs over:
	// its TCP connection, or its channel through the tunnel.
	rt *RoundTripConn
}

// watch starts following c. Every interval it sends a keepalive, as
// OpenSSH's ServerAliveInterval does, and closes c when no answer comes
// within another interval: a path that silently drops packets (the
// tunnel's new firewall, a host gone) then ends the connection, and
// everything waiting on it fails, instead of hanging until each caller's
// own deadline.
func watch(c *goph.Client, rt *RoundTripConn, interval time.Duration) *sshConn {
	sc := &sshConn{client: c, done: make(chan struct{}), rt: rt}
	go func() {
		_ = c.Wait()
		close(sc.done)
	}()
	if interval > 0 {
		go sc.keepalive(interval)
	}
	return sc
}

func (c *sshConn) keepalive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			// Any answer, even "request not supported", proves the path.
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		wait := time.NewTimer(interval)
		select {
		case err := <-reply:
			wait.Stop()
			if err != nil {
				_ = c.client.Close()
				return
			}
		case <-wait.C:
			_ = c.client.Close()
			return
		case <-c.done:
			wait.Stop()
			return
		}
	}
}

// ended reports whether the connection has ended, waiting up to grace for
// it: when a connection breaks, its channels fail a moment before Wait
// returns.
func (c *sshConn) ended(grace time.Duration) bool {
	if grace <= 0 {
		select {
		case <-c.done:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// DialTunnel loads the credentials and known_hosts named by opts and opens
// the connection to the tunnel host (at its public address). Every host
// key, the tunnel's included, is verified.
func DialTunnel(ctx context.Context, tunnel Target, opts Options) (*JumpDialer, error) {
	j := &JumpDialer{
		tunnel:  tunnel,
		opts:    opts,
		timeout: cmp.Or(opts.Timeout, inventory.DefaultTimeout),
		log:     opts.Logger,
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if err := checkTarget(tunnel); err != nil {
		return nil, err
	}
	khPath, err := expandHome(cmp.Or(opts.KnownHosts, inventory.DefaultKnownHosts))
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	var more []string
	for _, p := range opts.MoreKnownHosts {
		if p, err = expandHome(p); err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		more = append(more, p)
	}
	if j.known, err = newKnownHosts(khPath, more, opts.HashKnownHosts, opts.AcceptNew, j.log); err != nil {
		return nil, err
	}
	if j.auth, err = newAuth(j.identities(tunnel), os.Getenv("SSH_AUTH_SOCK"), j.log); err != nil {
		return nil, err
	}
	tc, err := j.dialDirect(ctx, tunnel)
	if err != nil {
		j.auth.Close()
		return nil, j.dialErr(tunnel, "", err)
	}
	j.tc = tc
	return j, nil
}

// identities are the identity files offered to t.
func (j *JumpDialer) identities(t Target) []string { return j.opts.IdentitiesFor(t) }

// UserFor is the user that logs in on t: its own, else User, else
// inventory.DefaultUser.
func (o Options) UserFor(t Target) string { return cmp.Or(t.User, o.User, inventory.DefaultUser) }

// IdentitiesFor are the identity files offered to t (ssh-agent's keys
// come besides): Identity, else t's own, else inventory.DefaultIdentity.
func (o Options) IdentitiesFor(t Target) []string {
	switch {
	case o.Identity != "":
		return []string{o.Identity}
	case len(t.Identities) > 0:
		return t.Identities
	}
	return []string{inventory.DefaultIdentity}
}

// Tunnel returns the tunnel host's target.
func (j *JumpDialer) Tunnel() Target { return j.tunnel }

// Dial opens a session to t. For the tunnel host (a target with the
// tunnel's Addr) the session runs on the tunnel connection and follows it
// across Reconnect; closing it leaves the tunnel open. Any other host gets
// its own SSH connection through the tunnel, closed with the session.
func (j *JumpDialer) Dial(ctx context.Context, t Target) (Session, error) {
	if err := checkTarget(t); err != nil {
		return nil, err
	}
	tc, err := j.current()
	if err != nil {
		return nil, fmt.Errorf("host %s: connect: %w", t.Name, err)
	}
	if t.Addr == j.tunnel.Addr {
		return &session{host: t.Name, log: j.log.With("host", t.Name), tunnel: j}, nil
	}
	c, err := j.dialVia(ctx, tc, t)
	if err != nil {
		return nil, j.dialErr(t, j.tunnel.Name, err)
	}
	return &session{host: t.Name, log: j.log.With("host", t.Name), conn: c, via: tc}, nil
}

// DialFresh opens a new SSH connection to t, never reusing one: for the
// tunnel host a new TCP connection from here to its public address, for
// any other host a new channel through the tunnel. It proves that a host
// still accepts new SSH connections, e.g. after a policy was applied to
// it; established connections may survive a policy that new ones do not.
func (j *JumpDialer) DialFresh(ctx context.Context, t Target) (Session, error) {
	if err := checkTarget(t); err != nil {
		return nil, err
	}
	if t.Addr == j.tunnel.Addr {
		if _, err := j.current(); errors.Is(err, net.ErrClosed) {
			return nil, fmt.Errorf("host %s: connect: %w", t.Name, err)
		}
		c, err := j.dialDirect(ctx, t)
		if err != nil {
			return nil, j.dialErr(t, "", err)
		}
		return &session{host: t.Name, log: j.log.With("host", t.Name), conn: c}, nil
	}
	return j.Dial(ctx, t)
}

// Reconnect replaces the tunnel connection with a new one, e.g. after the
// tunnel host's own firewall changed, which can cut the old connection and
// every channel through it. The old connection is closed, and with it every
// session to a non-tunnel host dialled through it; tunnel sessions carry
// on over the new connection.
//
// Concurrent calls coalesce: a caller that waited while another one
// reconnected keeps that new connection rather than replacing it, which
// would cut what was just dialled through it.
func (j *JumpDialer) Reconnect(ctx context.Context) error {
	j.mu.RLock()
	seen := j.tc
	j.mu.RUnlock()
	return j.replace(ctx, seen)
}

// replace is Reconnect for a caller that found connection seen down: it
// dials a new one unless another caller replaced seen already.
func (j *JumpDialer) replace(ctx context.Context, seen *sshConn) error {
	j.reconnect.Lock()
	defer j.reconnect.Unlock()
	tc, err := j.current()
	if errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("host %s: reconnect: %w", j.tunnel.Name, err)
	}
	if err == nil && tc != seen {
		return nil
	}
	c, err := j.dialDirect(ctx, j.tunnel)
	if err != nil {
		return j.dialErr(j.tunnel, "", err)
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		c.client.Close()
		return fmt.Errorf("host %s: reconnect: %w", j.tunnel.Name, errDialerClosed)
	}
	old := j.tc
	j.tc = c
	j.mu.Unlock()
	_ = old.client.Close()
	j.log.Debug("reconnected tunnel", "host", j.tunnel.Name)
	return nil
}

// Close closes the tunnel connection, which ends every session dialled
// through it, and the ssh-agent connection.
func (j *JumpDialer) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	err := j.tc.client.Close()
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		err = nil
	}
	return errors.Join(err, j.auth.Close())
}

// current returns the live tunnel connection.
func (j *JumpDialer) current() (*sshConn, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, errDialerClosed
	}
	if j.tc.ended(0) {
		return nil, fmt.Errorf("tunnel %s: %w", j.tunnel.Name, ErrTunnelDown)
	}
	return j.tc, nil
}

// dialDirect connects to t over TCP from here.
func (j *JumpDialer) dialDirect(ctx context.Context, t Target) (*sshConn, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, j.timeout, j.timeoutErr())
	defer cancel()
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The dial's deadline is ctx's own and may beat ctx's
			// timer by a hair ("i/o timeout"): report the cause ctx is
			// about to have, as handshake does.
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, err
	}
	conn = withQuickAck(conn)
	_, acked := conn.(quickAckConn)
	if j.opts.WrapConn != nil {
		conn = j.opts.WrapConn(conn)
	}
	rt := CountRoundTrips(conn)
	c, err := j.handshake(ctx, rt, t, !acked)
	if err != nil {
		return nil, err
	}
	j.log.Debug("connected", "host", t.Name, "addr", t.Addr, "took", time.Since(start), "round_trips", rt.RoundTrips())
	return watch(c, rt, j.timeout), nil
}

// dialVia connects to t through the tunnel connection tc: a direct-tcpip
// channel asks the tunnel host to open the TCP connection, and the SSH
// handshake with t runs over that channel, end to end. The round trips it
// logs are the handshake's on the channel; opening the channel costs one
// more, on the tunnel connection.
func (j *JumpDialer) dialVia(ctx context.Context, tc *sshConn, t Target) (*sshConn, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, j.timeout, j.timeoutErr())
	defer cancel()
	start := time.Now()
	conn, err := dialChannel(ctx, tc, t.Addr)
	if err != nil {
		return nil, err
	}
	rt := CountRoundTrips(conn)
	c, err := j.handshake(ctx, rt, t, true)
	if err != nil {
		return nil, err
	}
	j.log.Debug("connected", "host", t.Name, "addr", t.Addr, "via", j.tunnel.Name, "took", time.Since(start), "round_trips", rt.RoundTrips())
	return watch(c, rt, j.timeout), nil
}

// dialChannel opens a direct-tcpip channel through tc to addr: the tunnel
// host opens a new TCP connection to it.
func dialChannel(ctx context.Context, tc *sshConn, addr string) (net.Conn, error) {
	conn, err := tc.client.DialContext(ctx, "tcp", addr)
	if err != nil {
		var rejected *ssh.OpenChannelError
		switch {
		case ctx.Err() != nil:
			err = context.Cause(ctx)
		case errors.As(err, &rejected):
			// The tunnel host is there and answered: it could not (or
			// would not) open the TCP connection to the target.
			err = fmt.Errorf("tunnel host refused the channel: %w", err)
		default:
			err = fmt.Errorf("%w: %w", ErrTunnelDown, err)
		}
		return nil, err
	}
	return conn, nil
}

// handshake runs the SSH handshake with t on conn and wraps the client in
// a goph.Client. The handshake knows no context, so ctx's deadline is
// enforced by closing conn: a channel through the tunnel supports no
// deadlines, and a host that accepts TCP but never speaks SSH must not
// hold a dial past Options.Timeout. TCP connections get the deadline too.
// nudge answers the server's hostkeys-00 (see serveGlobalRequests): not
// needed where conn acknowledges every read at once itself.
func (j *JumpDialer) handshake(ctx context.Context, conn net.Conn, t Target, nudge bool) (*goph.Client, error) {
	user := j.opts.UserFor(t)
	methods, desc, problem, err := j.auth.methodsFor(j.identities(t))
	if err != nil {
		return nil, err
	}
	if problem != nil && (j.auth.agentKeys == nil || j.auth.agentEmpty) {
		return nil, fmt.Errorf("no SSH key: %w", problem)
	}
	algos, pinned := j.known.algorithms(t.Addr)
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              methods,
		HostKeyCallback:   j.known.callback(t.Name, t.Addr),
		HostKeyAlgorithms: algos,
		Timeout:           j.timeout,
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, cfg)
	if !stop() {
		// ctx ended during the handshake and conn is closed under it.
		if err == nil {
			_ = c.Close()
		}
		return nil, context.Cause(ctx)
	}
	if err != nil {
		_ = conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The TCP deadline is ctx's own and may beat ctx's timer
			// by a hair: report the cause ctx is about to have.
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}
		if msg := err.Error(); strings.Contains(msg, "unable to authenticate") {
			err = fmt.Errorf("authenticate as %s with %s: %w", user, desc, err)
		} else if pinned && strings.Contains(msg, "no common algorithm for host key") {
			err = fmt.Errorf("the host offers none of the key types %s holds for it (%s): %w",
				j.known.files(), strings.Join(cfg.HostKeyAlgorithms, ", "), err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	host, portStr, _ := net.SplitHostPort(t.Addr)
	port, _ := strconv.ParseUint(portStr, 10, 16)
	go serveGlobalRequests(c, reqs, nudge)
	return &goph.Client{
		Client: ssh.NewClient(c, chans, noRequests),
		Config: &goph.Config{
			Auth:     methods,
			User:     user,
			Addr:     host,
			Port:     uint(port),
			Timeout:  j.timeout,
			Callback: cfg.HostKeyCallback,
		},
	}, nil
}

func (j *JumpDialer) timeoutErr() error {
	return fmt.Errorf("no answer within %s: %w", j.timeout, context.DeadlineExceeded)
}

// dialErr names the host and what was dialled. A HostKeyError already
// names the host and is returned as it is.
func (j *JumpDialer) dialErr(t Target, via string, err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	if via != "" {
		return fmt.Errorf("host %s: connect to %s through tunnel %s: %w", t.Name, t.Addr, via, err)
	}
	return fmt.Errorf("host %s: connect to %s: %w", t.Name, t.Addr, err)
}

// checkTarget rejects an address known_hosts could not be checked against.
func checkTarget(t Target) error {
	if _, _, err := net.SplitHostPort(t.Addr); err != nil {
		return fmt.Errorf("host %s: address %q: %w", t.Name, t.Addr, err)
	}
	return nil
}
