// Package transport is fwpush's SSH layer: one connection to the tunnel
// (bastion) host, every other host reached through it the way OpenSSH's
// ProxyJump does, host keys always verified against known_hosts, keys from
// a file and ssh-agent, and sessions that run one fixed command with its
// data on stdin. It knows nothing of firewalls: the host protocol
// (runner/remote) and the orchestration (runner) sit on top of it.
package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Target is a host as fwpush reaches it.
type Target struct {
	Name string // inventory name, used in errors and logs
	// Addr is host:port as the inventory names it: the tunnel's public
	// address, any other host's private address. Host keys are verified
	// against it.
	Addr string
	User string // "" means Options.User
	// Identities are the identity files offered to this host when
	// Options.Identity names none (OpenSSH's IdentityFile for it); none
	// means inventory.DefaultIdentity.
	Identities []string
}

// Result is what a remote command produced.
type Result struct {
	Stdout, Stderr []byte
	// ExitStatus is the command's exit status: 128+n when it was killed by
	// signal n (as a shell reports it), -1 when the host reported nothing.
	ExitStatus int
}

// Session runs commands on one host.
type Session interface {
	// Run runs a fixed command (never built from inventory values) with
	// stdin as its input. A command that exits non-zero returns its
	// Result together with a *RemoteError; any other error means the
	// command's outcome is unknown. Cancelling ctx signals the remote
	// process (SIGTERM), closes its channel and returns at once.
	Run(ctx context.Context, cmd string, stdin []byte) (Result, error)
	// Ping measures one round trip to the host over the connection.
	Ping(ctx context.Context) (time.Duration, error)
	// Close releases the session's connection.
	Close() error
}

// Dialer opens sessions to hosts.
type Dialer interface {
	Dial(ctx context.Context, t Target) (Session, error)
}

// RemoteError is a command that ran and exited non-zero. It keeps the
// remote stderr, since that is what tells an operator what went wrong
// ("iptables-restore: line 7 failed").
type RemoteError struct {
	Host       string
	Cmd        string
	ExitStatus int    // as in Result
	Signal     string // set when the command was killed by a signal, e.g. "KILL"
	Stderr     []byte
}

// Error names host, command and exit status, then the remote stderr: the
// host's own words are what explain the failure.
func (e *RemoteError) Error() string {
	return "host " + e.Host + ": " + shortCmd(e.Cmd) + ": " + e.Outcome()
}

// Outcome is how the command ended and what it said on stderr, without the
// host and the command: for callers that name the step themselves.
func (e *RemoteError) Outcome() string {
	var b strings.Builder
	switch {
	case e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	case e.ExitStatus < 0:
		b.WriteString("exited without a status")
	default:
		fmt.Fprintf(&b, "exit status %d", e.ExitStatus)
	}
	if msg := strings.TrimSpace(string(e.Stderr)); msg != "" {
		const max = 2000
		if len(msg) > max {
			msg = "..." + msg[len(msg)-max:]
		}
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// stepKey is the context key of WithStep.
type stepKey struct{}

// WithStep names the step that the commands run under ctx carry out
// ("read live rules"), for the log: -vv then says what a host was asked to
// do, rather than the first words of a script.
func WithStep(ctx context.Context, step string) context.Context {
	return context.WithValue(ctx, stepKey{}, step)
}

// logCmd is the attribute a log line names a command by: its step when
// WithStep named one, else its first line.
func logCmd(ctx context.Context, cmd string) slog.Attr {
	if step, ok := ctx.Value(stepKey{}).(string); ok {
		return slog.String("step", step)
	}
	return slog.String("cmd", shortCmd(cmd))
}

// shortCmd keeps error messages to one line when the command is a script.
func shortCmd(cmd string) string {
	cmd, _, multi := strings.Cut(strings.TrimSpace(cmd), "\n")
	if multi {
		cmd += " ..."
	}
	return cmd
}

// ErrConnectionLost is wrapped by the error of a Run whose SSH connection
// ended before the command reported how it exited: the command may or may
// not have run, in part or whole. A policy that cuts the session off looks
// like this.
var ErrConnectionLost = errors.New("ssh connection lost")

// lostGrace is how long Run waits, after a failure, for the connection to
// report that it has ended: its channels fail a moment before it does.
const lostGrace = 250 * time.Millisecond

// session is a Session over one SSH connection. A session on the tunnel
// host does not own its connection: it asks the dialer for the current
// tunnel connection on every Run, so it keeps working after Reconnect.
type session struct {
	host string
	log  *slog.Logger

	conn   *sshConn    // owned; nil for a tunnel session
	via    *sshConn    // the tunnel connection conn runs through, if any
	tunnel *JumpDialer // set for a tunnel session

	mu     sync.Mutex
	closed bool
}

var _ Session = (*session)(nil)

// current returns the connection to run on and the tunnel it depends on.
func (s *session) current() (conn, via *sshConn, err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, nil, net.ErrClosed
	}
	if s.tunnel != nil {
		tc, err := s.tunnel.current()
		return tc, tc, err
	}
	return s.conn, s.via, nil
}

// Run implements Session. goph's own RunContext returns combined output
// only and leaves the channel open on cancellation, so Run drives the
// ssh.Session of the wrapped client itself.
func (s *session) Run(ctx context.Context, cmd string, stdin []byte) (Result, error) {
	fail := func(err error) (Result, error) {
		return Result{ExitStatus: -1}, fmt.Errorf("host %s: %s: %w", s.host, shortCmd(cmd), err)
	}
	if err := ctx.Err(); err != nil {
		return fail(context.Cause(ctx))
	}
	conn, via, err := s.current()
	if err != nil {
		return fail(err)
	}
	start, trips := time.Now(), conn.rt.RoundTrips()

	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	// Opening a channel and starting the command each wait for the host's
	// answer and know no context, so all of it runs here and Run selects
	// on ctx: a wedged connection cannot hold Run past cancellation.
	go func() {
		ss, err := conn.client.NewSession()
		if err != nil {
			done <- fmt.Errorf("open session: %w", err)
			return
		}
		defer ss.Close()
		// Cancellation must reach the remote process, not just us: signal
		// it, then close the channel, which also ends Wait below.
		stop := context.AfterFunc(ctx, func() {
			_ = ss.Signal(ssh.SIGTERM)
			_ = ss.Close()
		})
		defer stop()
		ss.Stdin = bytes.NewReader(stdin)
		ss.Stdout = &stdout
		ss.Stderr = &stderr
		if err := ss.Start(cmd); err != nil {
			done <- fmt.Errorf("start: %w", err)
			return
		}
		done <- ss.Wait()
	}()

	select {
	case <-ctx.Done():
		s.log.Debug("run cancelled", logCmd(ctx, cmd), "after", time.Since(start))
		return fail(context.Cause(ctx))
	case err = <-done:
	}
	// After a cancellation raced with completion, the channel was closed
	// under the command: report the cancellation, not a truncated result.
	if ctx.Err() != nil {
		return fail(context.Cause(ctx))
	}

	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	// Counted on the host's own stream; a tunnel session's is the tunnel
	// connection, which other hosts' channels share.
	s.log.Debug("ran", logCmd(ctx, cmd), "err", err, "took", time.Since(start), "round_trips", conn.rt.RoundTrips()-trips)
	var exit *ssh.ExitError
	var rejected *ssh.OpenChannelError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitStatus = exit.ExitStatus()
		return res, &RemoteError{Host: s.host, Cmd: cmd, ExitStatus: res.ExitStatus, Signal: exit.Signal(), Stderr: res.Stderr}
	case errors.As(err, &rejected):
		// The host is there and refused a session (MaxSessions, say).
		res.ExitStatus = -1
		return res, fmt.Errorf("host %s: %s: %w", s.host, shortCmd(cmd), err)
	}
	// No exit status (*ssh.ExitMissingError) or a failed channel: tell a
	// command that ended without one from a connection that went away.
	res.ExitStatus = -1
	if conn.ended(lostGrace) {
		if via != nil && via.ended(lostGrace) {
			err = fmt.Errorf("%w: %w", ErrTunnelDown, err)
		}
		return res, fmt.Errorf("host %s: %s: %w: %w", s.host, shortCmd(cmd), ErrConnectionLost, err)
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return res, &RemoteError{Host: s.host, Cmd: cmd, ExitStatus: -1, Stderr: res.Stderr}
	}
	return res, fmt.Errorf("host %s: %s: %w", s.host, shortCmd(cmd), err)
}

// Ping measures one round trip to the host over the session's connection:
// a keepalive request, which any SSH server answers.
func (s *session) Ping(ctx context.Context) (time.Duration, error) {
	conn, _, err := s.current()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, _, err := conn.client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Close implements Session. Closing a tunnel session leaves the tunnel
// connection open: the dialer owns it.
func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.conn == nil {
		return nil
	}
	if err := s.conn.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("host %s: close: %w", s.host, err)
	}
	return nil
}
