// Package runner orchestrates fwpush's work on a fleet: the push (read
// every host, apply what differs under the guard, confirm over a fresh
// connection, persist; the tunnel host last) and the probes of fwpush
// check. It drives each host through the host protocol (runner/remote) over
// the SSH transport (runner/transport), and declares the small interfaces
// it needs (Fleet, Host) so that tests can hand it fakes.
package runner

import (
	"context"
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
	cfg        *transport.SSHConfig
	becomePass string
}

var _ Fleet = (*SSHFleet)(nil)

// Open connects to inv's tunnel host with opts. Every host key is verified.
// What the inventory leaves out of a host's user, port and identity comes
// from opts.SSHConfig (see targetFor). becomePass is the password sudo
// wants on hosts whose login user becomes root with it ("" when sudo wants
// none).
func Open(ctx context.Context, inv *inventory.Inventory, opts transport.Options, becomePass string) (*SSHFleet, error) {
	j, err := transport.DialTunnel(ctx, targetFor(inv, inv.Tunnel(), opts.SSHConfig), opts)
	if err != nil {
		return nil, err
	}
	return &SSHFleet{inv: inv, j: j, cfg: opts.SSHConfig, becomePass: becomePass}, nil
}

// Open implements Fleet.
func (f *SSHFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	t := targetFor(f.inv, h, f.cfg)
	s, err := f.j.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	become := h.Become == inventory.BecomeSudo
	if !h.Given.Become {
		// Left to the user, who may come from ssh_config.
		become = t.User != "root"
	}
	return remote.New(s, remote.Options{
		Timeout:  f.inv.SSH.Timeout,
		Become:   become,
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
	return targetFor(inv, h, nil)
}

// targetFor is TargetFor with OpenSSH's client configuration filling what
// the inventory leaves out: the user and port it did not write, and the
// identity files (which Options.Identity overrides). The address is always
// the inventory's.
func targetFor(inv *inventory.Inventory, h *inventory.Host, cfg *transport.SSHConfig) transport.Target {
	ip := h.PrivateIP
	if h.Name == inv.SSH.Tunnel {
		ip = h.PublicIP
	}
	user, port := h.User, h.Port
	var ids []string
	if cfg != nil {
		hc := cfg.Lookup(h.Name, ip.String())
		if !h.Given.User && hc.User != "" {
			user = hc.User
		}
		if !h.Given.Port && hc.Port != 0 {
			port = hc.Port
		}
		ids = hc.IdentityFiles
	}
	return transport.Target{Name: h.Name, Addr: netip.AddrPortFrom(ip, uint16(port)).String(), User: user, Identities: ids}
}

// NotTried is the status of a host fwpush did not try to reach because of
// a problem of its own side (no usable key, the tunnel down, the tunnel's
// key rejected): that problem is reported once, not as every host's.
const NotTried Status = "not tried"

// NotTriedError is the error of a host that was not tried; Err is the
// problem that stopped every host, the same for each.
type NotTriedError struct {
	Host string
	Err  error
}

func (e *NotTriedError) Error() string {
	return "host " + e.Host + ": not tried: " + e.Err.Error()
}

func (e *NotTriedError) Unwrap() error { return e.Err }

// Unreached is the fleet of an inventory whose tunnel host could not be
// reached, or whose credentials could not be loaded (err): no host is
// tried, the tunnel included, and each fails with a *NotTriedError
// wrapping err, so that the caller reports err once and every host as
// NotTried.
func Unreached(err error) Fleet {
	return unreached{err: err}
}

type unreached struct{ err error }

func (u unreached) Open(_ context.Context, h *inventory.Host) (Host, error) {
	return nil, &NotTriedError{Host: h.Name, Err: u.err}
}

func (u unreached) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	return u.Open(ctx, h)
}
