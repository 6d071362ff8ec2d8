// Package runner orchestrates fwpush's work on a fleet: the push (read
// every host, apply what differs under the guard, confirm over a fresh
// connection, persist; the tunnel host last) and the probes of fwpush
// check. It drives each host through the host protocol (runner/remote) over
// the SSH transport (runner/transport), and declares the small interfaces
// it needs (Fleet, Host) so that tests can hand it fakes.
package runner

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// Host is one host as the orchestration drives it: the steps of the host
// protocol, over one connection.
type Host interface {
	Facts(ctx context.Context) (remote.Facts, error)
	Apply(ctx context.Context, a remote.Apply) error
	Confirm(ctx context.Context, c remote.Confirm) (remote.Confirmation, error)
	Persist(ctx context.Context, p remote.Persist) error
	Settle(ctx context.Context, token string, keep bool) (remote.Outcome, error)
	Probe(ctx context.Context, probes []remote.Probe, o remote.ProbeOptions) ([]remote.ProbeResult, time.Duration, error)
	Close() error
}

var _ Host = (*remote.Host)(nil)

// Fleet reaches the hosts of one inventory. SSHFleet is the real one.
type Fleet interface {
	// Open connects to h: the tunnel host on the fleet's own connection,
	// any other host with a connection of its own through it.
	Open(ctx context.Context, h *inventory.Host) (Host, error)
	// OpenFresh opens a connection that reuses nothing, to prove that h
	// still accepts new SSH connections after its rules changed. For the
	// tunnel host it is a new connection from here, which then carries the
	// fleet (the old one may not survive the tunnel's new rules).
	OpenFresh(ctx context.Context, h *inventory.Host) (Host, error)
}

// SSHFleet is the fleet over SSH: one connection to the tunnel host,
// opened once per command and shared by every step of it (a run and the
// check after it), and every other host reached through it.
type SSHFleet struct {
	inv        *inventory.Inventory
	j          *transport.JumpDialer
	becomePass string
}

var _ Fleet = (*SSHFleet)(nil)

// Open connects to inv's tunnel host with opts. Every host key is verified.
// becomePass is the password sudo wants on hosts whose login user becomes
// root with it ("" when sudo wants none).
func Open(ctx context.Context, inv *inventory.Inventory, opts transport.Options, becomePass string) (*SSHFleet, error) {
	j, err := transport.DialTunnel(ctx, TargetFor(inv, inv.Tunnel()), opts)
	if err != nil {
		return nil, err
	}
	return &SSHFleet{inv: inv, j: j, becomePass: becomePass}, nil
}

// Open implements Fleet.
func (f *SSHFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	t := TargetFor(f.inv, h)
	s, err := f.j.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	return remote.New(s, remote.Options{
		Timeout:  f.inv.SSH.Timeout,
		Become:   h.Become == inventory.BecomeSudo,
		Password: f.becomePass,
		User:     t.User,
		Name:     h.Name,
	}), nil
}

// OpenFresh implements Fleet.
func (f *SSHFleet) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	if h.Name == f.inv.SSH.Tunnel {
		if err := f.j.Reconnect(ctx); err != nil {
			return nil, err
		}
	}
	return f.Open(ctx, h)
}

// Close closes the tunnel connection and everything through it.
func (f *SSHFleet) Close() error { return f.j.Close() }

// TargetFor returns how fwpush reaches h: the tunnel host at its public
// address, every other host at its private address (through the tunnel).
func TargetFor(inv *inventory.Inventory, h *inventory.Host) transport.Target {
	ip := h.PrivateIP
	if h.Name == inv.SSH.Tunnel {
		ip = h.PublicIP
	}
	return transport.Target{Name: h.Name, Addr: netip.AddrPortFrom(ip, uint16(h.Port)).String(), User: h.User}
}

// Unreached is the fleet of an inventory whose tunnel host could not be
// reached (err): the tunnel host fails with err, and every other host,
// reached only through it, is not tried.
func Unreached(inv *inventory.Inventory, err error) Fleet {
	return unreached{tunnel: inv.SSH.Tunnel, err: err}
}

type unreached struct {
	tunnel string
	err    error
}

func (u unreached) Open(_ context.Context, h *inventory.Host) (Host, error) {
	if h.Name == u.tunnel {
		return nil, u.err
	}
	return nil, fmt.Errorf("host %s: not tried: the tunnel %s is not reachable", h.Name, u.tunnel)
}

func (u unreached) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	return u.Open(ctx, h)
}
