package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// Every host is reached through the one tunnel connection, however many
// goroutines dial at once.
func TestOneTunnelConnectionForTheFleet(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())

	const perHost = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*perHost)
	for _, name := range []string{"app-1", "db-1"} {
		for range perHost {
			wg.Go(func() {
				s, err := j.Dial(t.Context(), f.targets[name])
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				res, err := s.Run(t.Context(), "hostname", nil)
				if err != nil {
					errs <- err
					return
				}
				if got := strings.TrimSpace(string(res.Stdout)); got != name {
					errs <- fmt.Errorf("dialled %s, reached %s", name, got)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if got := f.tunnel.accepted.Load(); got != 1 {
		t.Errorf("tunnel server accepted %d TCP connections, want 1", got)
	}
	for _, name := range []string{"app-1", "db-1"} {
		if got := f.hosts[name].accepted.Load(); got != perHost {
			t.Errorf("%s accepted %d connections, want %d", name, got, perHost)
		}
	}
	// The tunnel was asked for the inventory's private addresses.
	fw := f.tunnel.forwarded()
	slices.Sort(fw)
	fw = slices.Compact(fw)
	if diff := cmp.Diff([]string{app1Addr, db1Addr}, fw); diff != "" {
		t.Errorf("direct-tcpip destinations (-want +got):\n%s", diff)
	}
}

func TestHostKeyUnknown(t *testing.T) {
	f := newFleet(t)
	// Only the tunnel is known.
	writeFile(t, f.knownHosts, knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()))
	j := f.dial(t, f.options())

	_, err := j.Dial(t.Context(), f.targets["app-1"])
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("Dial error = %v, want *HostKeyError", err)
	}
	key := f.hosts["app-1"].hostKeys[0].PublicKey()
	want := &HostKeyError{
		Host:        "app-1",
		Addr:        "10.0.0.5",
		Problem:     HostKeyUnknown,
		KeyType:     ssh.KeyAlgoED25519,
		Fingerprint: ssh.FingerprintSHA256(key),
		KnownHosts:  f.knownHosts,
	}
	if diff := cmp.Diff(want, hk); diff != "" {
		t.Errorf("HostKeyError (-want +got):\n%s", diff)
	}
	for _, part := range []string{"app-1", "unknown", ssh.FingerprintSHA256(key), "with fwpush --accept-new"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
	if f.hosts["app-1"].accepted.Load() != 1 {
		t.Errorf("app-1 was not reached through the tunnel")
	}
}

func TestTunnelHostKeyUnknown(t *testing.T) {
	f := newFleet(t)
	writeFile(t, f.knownHosts, knownLine(app1Addr, f.hosts["app-1"].hostKeys[0].PublicKey()))
	_, err := DialTunnel(t.Context(), f.targets["tunnel-1"], f.options())
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Problem != HostKeyUnknown || hk.Host != "tunnel-1" {
		t.Fatalf("DialTunnel error = %v, want unknown host key of tunnel-1", err)
	}
	if fp := ssh.FingerprintSHA256(f.tunnel.hostKeys[0].PublicKey()); !strings.Contains(err.Error(), fp) {
		t.Errorf("error %q does not name fingerprint %s", err, fp)
	}
	// The address is the one the inventory names, in known_hosts' form.
	if want := "[" + strings.Replace(f.tunnel.addr, ":", "]:", 1); hk.Addr != want {
		t.Errorf("Addr = %q, want %q", hk.Addr, want)
	}
}

// A changed key is refused, accept-new or not, and known_hosts is left alone.
func TestHostKeyChanged(t *testing.T) {
	for _, acceptNew := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept-new=%v", acceptNew), func(t *testing.T) {
			f := newFleet(t)
			old := ed25519Signer(t).PublicKey()
			writeFile(t, f.knownHosts,
				knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()),
				knownLine(db1Addr, old),
			)
			before, _ := os.ReadFile(f.knownHosts)
			opts := f.options()
			opts.AcceptNew = acceptNew
			j := f.dial(t, opts)

			_, err := j.Dial(t.Context(), f.targets["db-1"])
			var hk *HostKeyError
			if !errors.As(err, &hk) || hk.Problem != HostKeyChanged {
				t.Fatalf("Dial error = %v, want changed host key", err)
			}
			offered := ssh.FingerprintSHA256(f.hosts["db-1"].hostKeys[0].PublicKey())
			for _, part := range []string{"db-1", "[10.0.0.6]:2222", "CHANGED", offered, ssh.FingerprintSHA256(old), f.knownHosts + ":2"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %q", err, part)
				}
			}
			after, _ := os.ReadFile(f.knownHosts)
			if diff := cmp.Diff(string(before), string(after)); diff != "" {
				t.Errorf("known_hosts changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestAcceptNewRecordsKeys(t *testing.T) {
	f := newFleet(t)
	// A known_hosts that does not exist yet, in a directory that neither.
	f.knownHosts = filepath.Join(f.dir, "ssh", "known_hosts")
	opts := f.options()
	opts.AcceptNew = true
	j := f.dial(t, opts)

	// Many connections to the same new host at once record it once.
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			s, err := j.DialFresh(t.Context(), f.targets["db-1"])
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	data, err := os.ReadFile(f.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(data)), "\n")
	want := []string{
		knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()),
		knownLine(db1Addr, f.hosts["db-1"].hostKeys[0].PublicKey()),
		knownLine(app1Addr, f.hosts["app-1"].hostKeys[0].PublicKey()),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("known_hosts (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got[1], "[10.0.0.6]:2222 ssh-ed25519 ") || !strings.HasPrefix(got[2], "10.0.0.5 ssh-ed25519 ") {
		t.Errorf("known_hosts does not name the inventory addresses:\n%s", data)
	}
	if st, err := os.Stat(f.knownHosts); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode = %v, %v; want 0600", st.Mode(), err)
	}

	// Without accept-new, everything recorded is now known.
	opts.AcceptNew = false
	j2 := f.dial(t, opts)
	for _, name := range []string{"tunnel-1", "app-1", "db-1"} {
		s, err := j2.DialFresh(t.Context(), f.targets[name])
		if err != nil {
			t.Fatalf("DialFresh %s after accept-new: %v", name, err)
		}
		s.Close()
	}
}

// A host with several host keys must be asked for the one known_hosts
// holds. Go's default preference puts ECDSA and RSA before Ed25519, so the
// ed25519 and rsa cases fail without pinning.
func TestHostKeyAlgorithmPinning(t *testing.T) {
	keys := map[string]ssh.Signer{
		ssh.KeyAlgoED25519:  ed25519Signer(t),
		ssh.KeyAlgoECDSA256: ecdsaSigner(t),
		ssh.KeyAlgoRSA:      rsaSigner(t),
	}
	all := []ssh.Signer{keys[ssh.KeyAlgoECDSA256], keys[ssh.KeyAlgoRSA], keys[ssh.KeyAlgoED25519]}
	for _, known := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSA} {
		t.Run(known, func(t *testing.T) {
			f := newFleet(t)
			multi := newTestServer(t, "lb-1", serverConfig{hostKeys: all, authorized: []ssh.PublicKey{f.clientKey.PublicKey()}})
			const lbAddr = "10.0.0.7:22"
			f.route(lbAddr, multi.addr)
			writeFile(t, f.knownHosts,
				knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()),
				knownLine(lbAddr, keys[known].PublicKey()),
			)
			j := f.dial(t, f.options())
			s, err := j.Dial(t.Context(), Target{Name: "lb-1", Addr: lbAddr})
			if err != nil {
				t.Fatalf("Dial with only %s known: %v", known, err)
			}
			defer s.Close()
			if _, err := s.Run(t.Context(), "hostname", nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A server that accepts TCP and never speaks SSH must not hold a dial past
// the timeout, whether it is the tunnel or a host behind it (where the
// connection is a channel that supports no deadlines).
func TestDialTimeout(t *testing.T) {
	t.Parallel()
	// Generous against a loaded CI machine, and still far from the 5s
	// the tests' other connections use.
	const timeout = 500 * time.Millisecond
	const bound = 4 * time.Second

	t.Run("tunnel", func(t *testing.T) {
		f := newFleet(t)
		opts := f.options()
		opts.Timeout = timeout
		addr := silentListener(t)
		err := within(t, bound, func() error {
			_, err := DialTunnel(t.Context(), Target{Name: "tunnel-1", Addr: addr}, opts)
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "tunnel-1") {
			t.Errorf("error = %v, want a deadline error naming tunnel-1", err)
		}
	})
	t.Run("through the tunnel", func(t *testing.T) {
		f := newFleet(t)
		f.route("10.0.0.9:22", silentListener(t))
		opts := f.options()
		opts.Timeout = timeout
		j := f.dial(t, opts)
		err := within(t, bound, func() error {
			_, err := j.Dial(t.Context(), Target{Name: "hung-1", Addr: "10.0.0.9:22"})
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "hung-1") {
			t.Errorf("error = %v, want a deadline error naming hung-1", err)
		}
		if errors.Is(err, ErrTunnelDown) {
			t.Errorf("a hung host is not a tunnel failure: %v", err)
		}
		// The tunnel is still usable.
		s, err := j.Dial(t.Context(), f.targets["app-1"])
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("caller's context", func(t *testing.T) {
		f := newFleet(t)
		f.route("10.0.0.9:22", silentListener(t))
		j := f.dial(t, f.options()) // 5s timeout
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		err := within(t, bound, func() error {
			_, err := j.Dial(ctx, Target{Name: "hung-1", Addr: "10.0.0.9:22"})
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
	})
}

// within runs f and fails the test if it does not return within bound, so
// a dial that hangs fails fast instead of hanging the test binary.
func within(t *testing.T, bound time.Duration, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(bound):
		t.Fatalf("still dialling after %v", bound)
		return nil
	}
}

func TestUnreachableHostIsNotATunnelFailure(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	_, err := j.Dial(t.Context(), Target{Name: "gone-1", Addr: "10.0.0.99:22"})
	if err == nil || errors.Is(err, ErrTunnelDown) {
		t.Fatalf("error = %v, want a refused channel", err)
	}
	for _, part := range []string{"gone-1", "10.0.0.99:22", "tunnel-1", "no route to host"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func TestAgentAuth(t *testing.T) {
	f := newFleet(t)
	sock := startAgent(t, f.clientKey)
	t.Setenv("SSH_AUTH_SOCK", sock)
	opts := f.options()
	opts.Identity = filepath.Join(f.dir, "no-such-key")
	j := f.dial(t, opts)
	s, err := j.Dial(t.Context(), f.targets["db-1"])
	if err != nil {
		t.Fatalf("Dial with the agent's key: %v", err)
	}
	defer s.Close()
	if _, err := s.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatal(err)
	}
}

func TestAuthFailureNamesUserAndKeys(t *testing.T) {
	f := newFleet(t)
	opts := f.options()
	opts.Identity, _ = writeIdentity(t, t.TempDir(), "") // a key no server accepts
	_, err := DialTunnel(t.Context(), f.targets["tunnel-1"], opts)
	if err == nil {
		t.Fatal("DialTunnel with an unauthorized key succeeded")
	}
	for _, part := range []string{"tunnel-1", "authenticate as root", "identity " + opts.Identity} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func TestDialFreshOpensANewTunnelConnection(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	tun := f.targets["tunnel-1"]

	s, err := j.Dial(t.Context(), tun)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := f.tunnel.accepted.Load(); got != 1 {
		t.Fatalf("Dial of the tunnel opened a connection: %d accepted", got)
	}

	fresh, err := j.DialFresh(t.Context(), tun)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.tunnel.accepted.Load(); got != 2 {
		t.Errorf("DialFresh of the tunnel: %d connections accepted, want 2", got)
	}
	if _, err := fresh.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatal(err)
	}
	// Closing the fresh session leaves the tunnel connection alone.
	fresh.Close()
	app, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatalf("Dial after closing a fresh tunnel session: %v", err)
	}
	app.Close()
	// Closing a tunnel session does too.
	if got := f.tunnel.accepted.Load(); got != 2 {
		t.Errorf("tunnel accepted %d connections, want 2", got)
	}
}

func TestTunnelDownAndReconnect(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	tunSess, err := j.Dial(t.Context(), f.targets["tunnel-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer tunSess.Close()
	app, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()

	// The tunnel host drops every connection (its firewall changed).
	f.tunnel.dropConns()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = j.Dial(t.Context(), f.targets["db-1"])
		if errors.Is(err, ErrTunnelDown) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, ErrTunnelDown) {
		t.Fatalf("Dial through a dropped tunnel: %v, want ErrTunnelDown", err)
	}
	if _, err := tunSess.Run(t.Context(), "hostname", nil); !errors.Is(err, ErrTunnelDown) {
		t.Errorf("Run on the tunnel after the drop: %v, want ErrTunnelDown", err)
	}

	if err := j.Reconnect(t.Context()); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	if got := f.tunnel.accepted.Load(); got != 2 {
		t.Errorf("tunnel accepted %d connections, want 2", got)
	}
	// The tunnel session follows the new connection.
	if res, err := tunSess.Run(t.Context(), "hostname", nil); err != nil || strings.TrimSpace(string(res.Stdout)) != "tunnel-1" {
		t.Errorf("Run on the tunnel after Reconnect = %q, %v", res.Stdout, err)
	}
	db, err := j.Dial(t.Context(), f.targets["db-1"])
	if err != nil {
		t.Fatalf("Dial after Reconnect: %v", err)
	}
	db.Close()
	// A session dialled through the old connection is gone with it.
	if _, err := app.Run(t.Context(), "hostname", nil); err == nil {
		t.Error("Run on a session through the dropped tunnel succeeded")
	}
}

func TestReconnectReplacesALiveTunnel(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	app, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := j.Reconnect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Run(t.Context(), "hostname", nil); err == nil {
		t.Error("a session through the replaced tunnel connection still runs")
	}
	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatal(err)
	}
	if got := f.tunnel.accepted.Load(); got != 2 {
		t.Errorf("tunnel accepted %d connections, want 2", got)
	}
}

func TestClose(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	tun, err := j.Dial(t.Context(), f.targets["tunnel-1"])
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := j.Dial(t.Context(), f.targets["app-1"]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v, want net.ErrClosed", err)
	}
	if _, err := j.DialFresh(t.Context(), f.targets["tunnel-1"]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("DialFresh after Close: %v, want net.ErrClosed", err)
	}
	if err := j.Reconnect(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Reconnect after Close: %v, want net.ErrClosed", err)
	}
	if _, err := tun.Run(t.Context(), "hostname", nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run after Close: %v, want net.ErrClosed", err)
	}
	// A closed session says so.
	tun.Close()
	if _, err := tun.Run(t.Context(), "hostname", nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run on a closed session: %v, want net.ErrClosed", err)
	}
}

func TestDialRejectsMalformedAddress(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	_, err := j.Dial(t.Context(), Target{Name: "app-1", Addr: "10.0.0.5"})
	if err == nil || !strings.Contains(err.Error(), "app-1") {
		t.Errorf("Dial of an address without port: %v", err)
	}
}

// Hosts that all find the tunnel down and all reconnect must end up on one
// new connection, not replace each other's. Every caller here saw the old
// connection before any dial (as hosts that found it down at once do):
// exactly one dials. Through Reconnect, a caller that only looks after
// the first new connection is made redials, as it must (it may have found
// that one down), so the count would depend on the scheduler.
func TestConcurrentReconnectsCoalesce(t *testing.T) {
	f := newFleet(t)
	j := f.dial(t, f.options())
	f.tunnel.dropConns()
	j.mu.RLock()
	seen := j.tc
	j.mu.RUnlock()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := j.replace(t.Context(), seen); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.tunnel.accepted.Load(); got != 2 {
		t.Errorf("tunnel accepted %d connections after concurrent reconnects, want 2", got)
	}
	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A caller that saw the new connection replaces it.
	if err := j.Reconnect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := f.tunnel.accepted.Load(); got != 3 {
		t.Errorf("tunnel accepted %d connections after one more reconnect, want 3", got)
	}
}

// A tunnel whose packets start disappearing (no RST, no FIN) is found dead
// by the keepalive, and what waits on it fails instead of hanging.
func TestKeepaliveFindsASilentTunnelDead(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	fz := newFreezer(t, f.tunnel.addr)
	// known_hosts names the tunnel by the address we dial, the proxy's.
	writeFile(t, f.knownHosts,
		knownLine(fz.addr, f.tunnel.hostKeys[0].PublicKey()),
		knownLine(app1Addr, f.hosts["app-1"].hostKeys[0].PublicKey()),
	)
	opts := f.options()
	opts.Timeout = 500 * time.Millisecond
	j, err := DialTunnel(t.Context(), Target{Name: "tunnel-1", Addr: fz.addr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tun, err := j.Dial(t.Context(), Target{Name: "tunnel-1", Addr: fz.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	// Keepalive rounds pass while all is well.
	time.Sleep(3 * opts.Timeout)
	if _, err := tun.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatalf("Run before the freeze: %v", err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := tun.Run(t.Context(), "sleep", nil)
		errc <- err
	}()
	select {
	case <-f.tunnel.started:
	case <-time.After(5 * time.Second):
		t.Fatal("sleep never started")
	}
	fz.freeze()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) || !errors.Is(err, ErrTunnelDown) {
			t.Errorf("Run on a frozen tunnel: %v, want ErrConnectionLost and ErrTunnelDown", err)
		}
	case <-time.After(10 * opts.Timeout):
		t.Fatalf("Run on a frozen tunnel still waiting after %v", 10*opts.Timeout)
	}
	if _, err := j.Dial(t.Context(), f.targets["app-1"]); !errors.Is(err, ErrTunnelDown) {
		t.Errorf("Dial through a frozen tunnel: %v, want ErrTunnelDown", err)
	}
}

// A host that no longer offers the key type known_hosts holds for it fails
// with a message that says so, not with a bare algorithm mismatch.
func TestKnownKeyTypeNotOffered(t *testing.T) {
	f := newFleet(t)
	writeFile(t, f.knownHosts,
		knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()),
		knownLine(app1Addr, ecdsaSigner(t).PublicKey()), // app-1 only has ed25519
	)
	j := f.dial(t, f.options())
	_, err := j.Dial(t.Context(), f.targets["app-1"])
	if err == nil {
		t.Fatal("Dial succeeded")
	}
	for _, part := range []string{"app-1", "offers none of the key types", f.knownHosts, ssh.KeyAlgoECDSA256} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

// TestTargetIdentities: without Options.Identity each target offers its
// own identity files (ssh_config's IdentityFile), a missing one skipped,
// and one that no server accepts fails that host only.
func TestTargetIdentities(t *testing.T) {
	f := newFleet(t)
	opts := f.options()
	opts.Identity = ""
	missing := filepath.Join(f.dir, "missing")
	tunnel := f.targets["tunnel-1"]
	tunnel.Identities = []string{missing, f.identity}
	j, err := DialTunnel(t.Context(), tunnel, opts)
	if err != nil {
		t.Fatalf("DialTunnel with the target's identities: %v", err)
	}
	defer j.Close()
	db := f.targets["db-1"]
	db.Identities = []string{f.identity}
	s, err := j.Dial(t.Context(), db)
	if err != nil {
		t.Fatalf("Dial db-1 with its identity: %v", err)
	}
	s.Close()
	other, _ := writeIdentity(t, t.TempDir(), "")
	app := f.targets["app-1"]
	app.Identities = []string{other}
	if _, err := j.Dial(t.Context(), app); err == nil || !strings.Contains(err.Error(), "identity "+other) {
		t.Errorf("Dial app-1 with a key it does not accept: %v, want an authentication error naming the key", err)
	}
	app.Identities = []string{missing}
	if _, err := j.Dial(t.Context(), app); err == nil || !strings.Contains(err.Error(), "no SSH key: identity "+missing+" does not exist") {
		t.Errorf("Dial app-1 with a missing key and no agent: %v", err)
	}
}
