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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	// Prepare has the next Run open, as it starts its command, the
	// channel of the command after it, so that the open overlaps the
	// command: for a caller that knows (or guesses) another command
	// follows. With next set, the channel also starts next at once,
	// which then waits for its stdin: the Run that uses the channel must
	// run next (any other command gets a channel of its own), and it
	// costs one round trip, the command's answer. A command that must
	// not act before its Run may be started ahead only if it reads
	// stdin before it acts; if no Run uses the channel, it gets an empty
	// stdin as the session closes.
	Prepare(next string)
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
	// spare is the channel opened ahead for the next command, if any;
	// wantNext asks the next Run to open one (Prepare), nextCmd what
	// that channel starts.
	spare    *spare
	wantNext bool
	nextCmd  string
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

// Run implements Session. It drives a raw session channel rather than
// x/crypto/ssh's Session, whose Start waits for the answer to "exec": the
// exec request, stdin and its end leave as soon as the channel lets them.
// OpenSSH's sshd opens a session channel's window only once the command
// has started, so stdin waits for that: a command costs three round trips
// on a channel opened for it (open; exec, answered by the window; stdin,
// answered by the output, exit status and close), two on one opened ahead
// (see Prepare), one on one that started the command ahead, and a command
// with no stdin one round trip less (its end needs no window). A command
// the host refuses to start ends at ctx's deadline, with no exit status.
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
	spare := s.takeSpare(conn, cmd)
	s.mu.Lock()
	next, nextCmd := s.wantNext, s.nextCmd
	s.wantNext, s.nextCmd = false, ""
	s.mu.Unlock()

	var stdout, stderr bytes.Buffer
	done := make(chan exit, 1)
	// Opening a channel waits for the host's answer and knows no context,
	// so all of it runs here and Run selects on ctx: a wedged connection
	// cannot hold Run past cancellation.
	go func() {
		ch, reqs, err := spare.get(conn)
		if err != nil {
			done <- exit{status: -1, err: fmt.Errorf("open session: %w", err)}
			return
		}
		defer ch.Close()
		// Cancellation must reach the remote process, not just us: signal
		// it, then close the channel, which also ends the reads below.
		stop := context.AfterFunc(ctx, func() {
			_, _ = ch.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{string(ssh.SIGTERM)}))
			_ = ch.Close()
		})
		defer stop()
		if !spare.started() {
			if _, err := ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{cmd})); err != nil {
				done <- exit{status: -1, err: fmt.Errorf("start: %w", err)}
				return
			}
		}
		// The host may answer before it has read all of stdin (a script
		// that refuses its header): the reads start first.
		var copies sync.WaitGroup
		copies.Go(func() { _, _ = io.Copy(&stdout, ch) })
		copies.Go(func() { _, _ = io.Copy(&stderr, ch.Stderr()) })
		if _, err := ch.Write(stdin); err == nil {
			_ = ch.CloseWrite()
		}
		if next {
			s.prepare(conn, nextCmd)
		}
		e := waitExit(reqs)
		copies.Wait()
		done <- e
	}()

	var e exit
	select {
	case <-ctx.Done():
		s.log.Debug("run cancelled", logCmd(ctx, cmd), "after", time.Since(start))
		return fail(context.Cause(ctx))
	case e = <-done:
	}
	// After a cancellation raced with completion, the channel was closed
	// under the command: report the cancellation, not a truncated result.
	if ctx.Err() != nil {
		return fail(context.Cause(ctx))
	}

	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitStatus: e.status}
	// Counted on the host's own stream; a tunnel session's is the tunnel
	// connection, which other hosts' channels share.
	s.log.Debug("ran", logCmd(ctx, cmd), "exit", e.status, "took", time.Since(start), "round_trips", conn.rt.RoundTrips()-trips)
	var rejected *ssh.OpenChannelError
	switch {
	case e.err == nil && e.status == 0:
		return res, nil
	case e.err == nil && e.status > 0:
		return res, &RemoteError{Host: s.host, Cmd: cmd, ExitStatus: e.status, Signal: e.signal, Stderr: res.Stderr}
	case errors.As(e.err, &rejected):
		// The host is there and refused a session (MaxSessions, say).
		return res, fmt.Errorf("host %s: %s: %w", s.host, shortCmd(cmd), e.err)
	}
	// No exit status, or a channel that failed: tell a command that ended
	// without one from a connection that went away.
	err = e.err
	if err == nil {
		err = errExitMissing
	}
	if conn.ended(lostGrace) {
		if via != nil && via.ended(lostGrace) {
			err = fmt.Errorf("%w: %w", ErrTunnelDown, err)
		}
		return res, fmt.Errorf("host %s: %s: %w: %w", s.host, shortCmd(cmd), ErrConnectionLost, err)
	}
	if e.err == nil {
		return res, &RemoteError{Host: s.host, Cmd: cmd, ExitStatus: -1, Stderr: res.Stderr}
	}
	return res, fmt.Errorf("host %s: %s: %w", s.host, shortCmd(cmd), err)
}

// errExitMissing is a command whose channel closed without an exit status.
var errExitMissing = errors.New("the command ended without an exit status")

// exit is how a command ended: its status (128+n for signal n; -1 when
// the host told neither), or err when its channel could not be used.
type exit struct {
	status int
	signal string
	err    error
}

// waitExit reads a command's channel requests until the channel closes,
// and returns the exit status or signal the host sent, as x/crypto/ssh's
// Session.Wait does.
func waitExit(reqs <-chan *ssh.Request) exit {
	e := exit{status: -1}
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			if len(r.Payload) >= 4 {
				e.status = int(binary.BigEndian.Uint32(r.Payload))
			}
		case "exit-signal":
			var sig struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if ssh.Unmarshal(r.Payload, &sig) == nil {
				e.signal = sig.Signal
			}
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
	if e.status == -1 && e.signal != "" {
		e.status = 128 + signalNumbers[e.signal]
	}
	return e
}

// signalNumbers are the numbers, on Linux, of the signals RFC 4254 names.
var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9,
	"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
}

// spare is a session channel opened on conn ahead of the command that
// will use it: its open overlaps the command before. With cmd set, the
// channel has started cmd too.
type spare struct {
	conn  *sshConn
	cmd   string
	ready chan struct{} // closed once the open is answered
	ch    ssh.Channel
	reqs  <-chan *ssh.Request
	err   error
}

// started reports whether the spare's channel has started its command.
func (sp *spare) started() bool {
	return sp != nil && sp.cmd != "" && sp.err == nil
}

// Prepare implements Session.
func (s *session) Prepare(next string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantNext, s.nextCmd = true, next
}

// prepare opens a session channel on conn for the next command, in the
// background, and starts cmd on it if set.
func (s *session) prepare(conn *sshConn, cmd string) {
	sp := &spare{conn: conn, cmd: cmd, ready: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	old := s.spare
	s.spare = sp
	s.mu.Unlock()
	old.discard()
	go func() {
		defer close(sp.ready)
		sp.ch, sp.reqs, sp.err = conn.client.OpenChannel("session", nil)
		if sp.err == nil && cmd != "" {
			if _, err := sp.ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{cmd})); err != nil {
				_ = sp.ch.Close()
				sp.err = err
			}
		}
	}()
}

// takeSpare takes the channel opened ahead on conn for cmd, if there is
// one; nil otherwise (get then opens one).
func (s *session) takeSpare(conn *sshConn, cmd string) *spare {
	s.mu.Lock()
	sp := s.spare
	s.spare = nil
	s.mu.Unlock()
	if sp != nil && (sp.conn != conn || sp.cmd != "" && sp.cmd != cmd) {
		// Opened on a connection that has been replaced, or started
		// another command.
		sp.discard()
		return nil
	}
	return sp
}

// get returns the spare's channel once it is open, or opens one on conn
// when there is no spare or it could not be opened (started then reports
// false).
func (sp *spare) get(conn *sshConn) (ssh.Channel, <-chan *ssh.Request, error) {
	if sp != nil {
		<-sp.ready
		if sp.err == nil {
			return sp.ch, sp.reqs, nil
		}
	}
	return conn.client.OpenChannel("session", nil)
}

// discard closes the spare's channel once it is open, unused.
func (sp *spare) discard() {
	if sp == nil {
		return
	}
	go func() {
		<-sp.ready
		if sp.err == nil {
			_ = sp.ch.Close()
			ssh.DiscardRequests(sp.reqs)
		}
	}()
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
	s.spare.discard()
	s.spare = nil
	if s.conn == nil {
		return nil
	}
	if err := s.conn.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("host %s: close: %w", s.host, err)
	}
	return nil
}
