package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

func TestRunOnTunnelAndThroughIt(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	input := []byte("*filter\n:INPUT DROP [0:0]\nCOMMIT\n")

	for _, name := range []string{"tunnel-1", "app-1", "db-1"} {
		t.Run(name, func(t *testing.T) {
			s, err := j.Dial(t.Context(), f.targets[name])
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer s.Close()

			tests := []struct {
				cmd        string
				stdin      []byte
				wantStdout string
				wantStatus int
				wantStderr string
			}{
				{cmd: "cat", stdin: input, wantStdout: string(input)},
				{cmd: "cat", stdin: nil, wantStdout: ""},
				{cmd: "hostname", wantStdout: name + "\n"},
				{cmd: "whoami", wantStdout: "root\n"},
				{cmd: "exit 3", wantStatus: 3, wantStderr: "boom: something failed\n"},
			}
			for _, tt := range tests {
				res, err := s.Run(t.Context(), tt.cmd, tt.stdin)
				if tt.wantStatus == 0 && err != nil {
					t.Fatalf("Run(%q): %v", tt.cmd, err)
				}
				if tt.wantStatus != 0 {
					var re *RemoteError
					if !errors.As(err, &re) {
						t.Fatalf("Run(%q) error = %v, want *RemoteError", tt.cmd, err)
					}
					want := &RemoteError{Host: name, Cmd: tt.cmd, ExitStatus: tt.wantStatus, Stderr: []byte(tt.wantStderr)}
					if diff := cmp.Diff(want, re); diff != "" {
						t.Errorf("Run(%q) RemoteError (-want +got):\n%s", tt.cmd, diff)
					}
					for _, part := range []string{"host " + name, tt.cmd, fmt.Sprintf("exit status %d", tt.wantStatus), strings.TrimSpace(tt.wantStderr)} {
						if !strings.Contains(err.Error(), part) {
							t.Errorf("error %q does not mention %q", err, part)
						}
					}
				}
				if got := string(res.Stdout); got != tt.wantStdout {
					t.Errorf("Run(%q) stdout = %q, want %q", tt.cmd, got, tt.wantStdout)
				}
				if got := string(res.Stderr); got != tt.wantStderr {
					t.Errorf("Run(%q) stderr = %q, want %q", tt.cmd, got, tt.wantStderr)
				}
				if res.ExitStatus != tt.wantStatus {
					t.Errorf("Run(%q) exit status = %d, want %d", tt.cmd, res.ExitStatus, tt.wantStatus)
				}
			}
		})
	}
}

func TestTargetUserOverridesOptions(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	tgt := f.targets["app-1"]
	tgt.User = "deploy"
	s, err := j.Dial(t.Context(), tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(t.Context(), "whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Stdout); got != "deploy\n" {
		t.Errorf("whoami = %q, want deploy", got)
	}
}

// Cancelling a Run reaches the remote process and returns at once: Run
// returns while the remote process, signalled, still runs (its exit is
// held until Run has returned), so it cannot have waited for its end.
func TestRunCancel(t *testing.T) {
	for _, name := range []string{"tunnel-1", "app-1"} {
		t.Run(name, func(t *testing.T) {
			f := newFleet(t)
			j := f.dial(t, f.options())
			server := f.tunnel
			if name != "tunnel-1" {
				server = f.hosts[name]
			}
			s, err := j.Dial(t.Context(), f.targets[name])
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() {
				_, err := s.Run(ctx, "sleep", nil)
				errc <- err
			}()
			select {
			case <-server.started:
			case <-time.After(5 * time.Second):
				t.Fatal("sleep never started")
			}
			release := server.holdExits(t)
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run error = %v, want context.Canceled", err)
				}
			// A hang guard: a Run that waited for the remote process
			// would wait here for ever, its exit held until Run returns.
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancellation while the remote process still ran")
			}
			release()
			select {
			case sig := <-server.signals:
				if sig != string(ssh.SIGTERM) {
					t.Errorf("remote got signal %s, want TERM", sig)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("remote process got no signal")
			}
			// The session is still usable after a cancelled command.
			if res, err := s.Run(t.Context(), "hostname", nil); err != nil || strings.TrimSpace(string(res.Stdout)) != name {
				t.Errorf("Run after cancel = %q, %v", res.Stdout, err)
			}
		})
	}
}

func TestRunWithEndedContext(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Run(ctx, "hostname", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", err)
	}
}

func TestRemoteErrorMessage(t *testing.T) {
	tests := []struct {
		err  *RemoteError
		want string
	}{{
		err:  &RemoteError{Host: "db-1", Cmd: "iptables-restore -w", ExitStatus: 1, Stderr: []byte("iptables-restore: line 7 failed\n")},
		want: "host db-1: iptables-restore -w: exit status 1: iptables-restore: line 7 failed",
	}, {
		err:  &RemoteError{Host: "db-1", Cmd: "set -e\nmkdir -p /var/lib/fwpush\n", ExitStatus: 2},
		want: "host db-1: set -e ...: exit status 2",
	}, {
		err:  &RemoteError{Host: "db-1", Cmd: "sleep", ExitStatus: 137, Signal: "KILL"},
		want: "host db-1: sleep: killed by signal KILL",
	}, {
		err:  &RemoteError{Host: "db-1", Cmd: "true", ExitStatus: -1},
		want: "host db-1: true: exited without a status",
	}}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// A connection that goes away under a command is not the command failing:
// the caller must not read "exited without status" as the host's answer.
func TestRunConnectionLost(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"tunnel-1", "app-1"} {
		t.Run(name, func(t *testing.T) {
			f := newFleet(t)
			j := f.dial(t, f.options())
			server := f.tunnel
			if name != "tunnel-1" {
				server = f.hosts[name]
			}
			s, err := j.Dial(t.Context(), f.targets[name])
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := s.Run(t.Context(), "sleep", nil)
				errc <- err
			}()
			select {
			case <-server.started:
			case <-time.After(5 * time.Second):
				t.Fatal("sleep never started")
			}
			server.dropConns()
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after the connection dropped")
			}
			if !errors.Is(err, ErrConnectionLost) {
				t.Errorf("Run error = %v, want ErrConnectionLost", err)
			}
			if got := errors.Is(err, ErrTunnelDown); got != (name == "tunnel-1") {
				t.Errorf("errors.Is(%v, ErrTunnelDown) = %v", err, got)
			}
			var re *RemoteError
			if errors.As(err, &re) {
				t.Errorf("a lost connection reported as the command's failure: %v", err)
			}
		})
	}
}

// TestRunLogsTheStep: -vv names the step a command carries out, not the
// first words of its script; a command run without one is named by its
// first line.
func TestRunLogsTheStep(t *testing.T) {
	f := newFleet(t)
	var log strings.Builder
	opts := f.options()
	opts.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	j := f.dial(t, opts)
	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer s.Close()
	if _, err := s.Run(WithStep(t.Context(), "read live rules"), "cat", []byte("5\n")); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := s.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var ran []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "msg=ran") {
			ran = append(ran, l)
		}
	}
	if len(ran) != 2 || !strings.Contains(ran[0], `step="read live rules"`) || strings.Contains(ran[0], "cmd=") ||
		!strings.Contains(ran[1], `cmd=hostname`) {
		t.Errorf("the log of two commands, the first a step:\n%s", strings.Join(ran, "\n"))
	}
}

// A command costs one round trip on a channel opened ahead (Prepare) and
// two on one opened for it: the exec request, stdin and its end leave in
// one flight, without waiting for the host's answer to the exec.
func TestRunRoundTrips(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	opts := f.options()
	opts.Timeout = time.Minute // no keepalive falls into the counts
	var rt *RoundTripConn
	opts.WrapConn = func(c net.Conn) net.Conn { rt = CountRoundTrips(c); return rt }
	j := f.dial(t, opts)
	// The tunnel's own session runs on the counted connection, alone.
	s, err := j.Dial(t.Context(), f.targets["tunnel-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// runs runs n commands, each preparing the next one's channel or
	// not, and returns their round trips.
	runs := func(n int, prepare bool) int64 {
		t.Helper()
		before := rt.RoundTrips()
		for range n {
			if prepare {
				s.Prepare("")
			}
			res, err := s.Run(t.Context(), "cat", []byte("some rules\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.Stdout); got != "some rules\n" {
				t.Fatalf("stdout %q, want the stdin back", got)
			}
		}
		// The host's close of the last channel, answered in the
		// background, must not fall into the next count.
		time.Sleep(50 * time.Millisecond)
		return rt.RoundTrips() - before
	}
	// A count is often one higher, when a reply splits around a write of
	// the client's (closing the last channel, a window adjustment): the
	// bounds allow for it, and hold what matters. Before commands were
	// pipelined, each cost 3.
	const n = 8
	if got := runs(n, false); got > 2*n+4 {
		t.Errorf("%d commands on channels of their own took %d round trips, want about 2 each", n, got)
	}
	// The first opens its own channel; each opens the next one's.
	if got := runs(n, true); got >= 2*n {
		t.Errorf("%d commands on channels opened ahead took %d round trips, want about 1 each, the first 2", n, got)
	}
	// The spare of the last one is there for the next.
	if got := runs(1, false); got > 2 {
		t.Errorf("a command on a channel opened ahead took %d round trips, want 1", got)
	}

	// A command started ahead runs before its Run; another command than
	// that one gets its own channel.
	s.Prepare("sleep")
	runs(1, false)
	select {
	case <-f.tunnel.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the command prepared was not started ahead")
	}
	res, err := s.Run(t.Context(), "hostname", nil)
	if err != nil || string(res.Stdout) != "tunnel-1\n" {
		t.Errorf("hostname after sleep was started ahead: %q, %v", res.Stdout, err)
	}
	s.Prepare("cat")
	runs(1, false)
	if got := runs(1, false); got > 2 {
		t.Errorf("a command started ahead took %d round trips, want 1", got)
	}
}
