// Package runner orchestrates fwpush's work on a fleet: the push (read
// every host, apply what differs under the guard, confirm over a fresh
// connection, persist; each site's bastions last) and the probes of fwpush
// check. It drives each host through the host protocol (runner/remote) over
// the SSH transport (runner/transport), and declares the small interfaces
// it needs (Fleet, Host) so that tests can hand it fakes.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
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
	// Open connects to h: the bastion carrying h's site on the site's own
	// connection, any other host with a connection of its own through it.
	Open(ctx context.Context, h *inventory.Host) (Host, error)
	// OpenFresh opens a connection that reuses nothing, to prove that h
	// still accepts new SSH connections after its rules changed. For the
	// bastion carrying h's site it is a new connection from here, which
	// then carries the site (the old one may not survive the bastion's new
	// rules).
	OpenFresh(ctx context.Context, h *inventory.Host) (Host, error)
	// Tunnel names the bastion that carries the connections to a site's
	// hosts ("" for the one site of an inventory without [sites]),
	// reaching the site first if need be; "" when none of its bastions
	// answers. A run changes it last.
	Tunnel(ctx context.Context, site string) string
}

// Prover is a Fleet that proves, without logging in, that a host accepts
// new SSH connections from where fwpush's come from: a run then confirms
// over the connection it applied on, once the proof is made (see
// pusher.confirm). A Fleet that is not a Prover proves it with a fresh
// connection (OpenFresh).
type Prover interface {
	// Prove knocks on h's SSH port with a new connection, made as a
	// login to h would be, and reads its SSH server's banner.
	Prove(ctx context.Context, h *inventory.Host) error
}

var _ Prover = (*SSHFleet)(nil)

// SSHFleet is the fleet over SSH: per site, one connection to the first of
// its bastions that answers, opened when the command first needs the site
// and shared by every step of it (a run and the check after it); every
// other host of the site, its other bastions included, is reached through
// that one. A site none of whose bastions answers fails its own hosts
// only.
type SSHFleet struct {
	inv    *inventory.Inventory
	opts   transport.Options
	cfg    *transport.SSHConfig
	o      OpenOptions
	forced map[string]*inventory.Host
	log    *slog.Logger
	sites  map[string]*siteLink
	// opened holds, by host name, the failover generation of its site
	// when the host was last opened (see Relink).
	opened sync.Map
}

// OpenOptions shape how a fleet reaches its sites.
type OpenOptions struct {
	// BecomePass is the password sudo wants on hosts whose login user
	// becomes root with it ("" when sudo wants none).
	BecomePass string
	// What the inventory leaves out of a host's user, port and identity
	// comes from the transport options' SSHConfig (see TargetFor).
	// Via names bastions to go through whatever the inventory prefers
	// (--via), at most one per site: the site fails if it does not answer.
	Via []string
	// OnReach, when set, is called once per site as it is reached, or
	// found unreachable, and again when a standby takes over from a
	// bastion lost in the middle of the command (from several goroutines
	// at once).
	OnReach func(Reach)
	// Who runs fwpush, as a run this one settles is told ("" means this
	// process, as Who says).
	Who string
}

var _ Fleet = (*SSHFleet)(nil)

// siteLink is how one site is reached: through j to bastion via, or, when
// none of its bastions answered, not at all (err). once guards the
// connection, made by the first caller that needs the site; mu guards via,
// j and reach after that, which a failover replaces (see failover.go).
type siteLink struct {
	once    sync.Once
	reached atomic.Bool // set once the fields below are
	mu      sync.RWMutex
	reach   Reach
	via     *inventory.Host
	j       *transport.JumpDialer
	// failing serialises failovers; lost is why the last one failed, and
	// lostAt when (see failover).
	failing sync.Mutex
	lost    error
	lostAt  time.Time
	// gen counts the failovers: a host opened through an earlier one was
	// opened through a way lost since (see Relink).
	gen int
	// err is why the site could not be reached: what its one bastion
	// answered, in an inventory without [sites] that has one (a problem
	// of fwpush's own side as much as the bastion's), else a *SiteError.
	err error
}

// Reach says how a site was reached, for the report: through which
// bastion, and why the bastions preferred to it were skipped.
type Reach struct {
	Site string // "" for the one site of an inventory without [sites]
	// Via is the bastion that carries the site; "" when none answered.
	Via string
	// Forced is set when --via chose it.
	Forced bool
	// Skipped are the bastions tried before Via (all of them when none
	// answered), in order, and why each was skipped.
	Skipped []Skip
}

// Skip is a bastion that did not answer.
type Skip struct {
	Bastion string
	Err     error
}

// String says it in one line: "site east: through bastion-e2;
// bastion-e1 skipped: host bastion-e1: connect to ...".
func (r Reach) String() string {
	if r.Via == "" {
		return (&SiteError{Site: r.Site, Tried: r.Skipped, Forced: r.Forced}).Error()
	}
	var b strings.Builder
	if r.Site != "" {
		b.WriteString("site " + r.Site + ": ")
	}
	switch {
	case r.Forced:
		fmt.Fprintf(&b, "through %s (--via)", r.Via)
	default:
		fmt.Fprintf(&b, "through %s", r.Via)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "; %s skipped: %v", s.Bastion, s.Err)
	}
	return b.String()
}

// SiteError is a site none of whose bastions could be reached: every host
// of the site fails with it, and the hosts that are not bastions are not
// tried.
type SiteError struct {
	Site string // "" for the one site of an inventory without [sites]
	// Tried are the bastions tried, in order, and why each failed.
	Tried  []Skip
	Forced bool // only the one --via named was tried
}

func (e *SiteError) Error() string {
	if e.Site == "" {
		return e.Reason()
	}
	return "site " + e.Site + ": " + e.Reason()
}

// Reason is the error without the site's name: which bastions failed, and
// why.
func (e *SiteError) Reason() string {
	var b strings.Builder
	switch {
	case e.Site == "" && len(e.Tried) == 1:
		fmt.Fprintf(&b, "the tunnel %s is not reachable", e.Tried[0].Bastion)
	case e.Site == "":
		b.WriteString("no tunnel answers")
	default:
		b.WriteString("no bastion answers")
	}
	if e.Forced {
		b.WriteString(" (--via)")
	}
	b.WriteString(": ")
	for i, t := range e.Tried {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(t.Err.Error())
	}
	return b.String()
}

// Open prepares to reach every site of inv with opts: each through the
// first of its bastions that answers, in the inventory's order of
// preference, or through the one o.Via names. A site is connected to when
// a host of it is first opened (or Tunnel asks), so that a command
// limited to some hosts contacts only their sites, and sites connect in
// parallel as their hosts are worked on. Every host key is verified. A site
// none of whose bastions answers is not an error: its hosts fail with a
// *NotTriedError wrapping why (see Err). The error is for an o.Via that
// names no bastion, before anything is contacted.
func Open(inv *inventory.Inventory, opts transport.Options, o OpenOptions) (*SSHFleet, error) {
	forced := map[string]*inventory.Host{}
	for _, name := range o.Via {
		h, ok := inv.Host(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("--via %s: no such host", name)
		case !inv.IsBastion(h):
			site, _ := inv.Site(h.Site)
			return nil, fmt.Errorf("--via %s: not a bastion: the hosts of %s accept SSH from %s only", name, siteName(h.Site), strings.Join(site.Tunnels, ", "))
		case forced[h.Site] != nil:
			return nil, fmt.Errorf("--via %s: --via %s already names the bastion of %s", name, forced[h.Site].Name, siteName(h.Site))
		}
		forced[h.Site] = h
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Who == "" {
		o.Who = Who()
	}
	f := &SSHFleet{inv: inv, opts: opts, cfg: opts.SSHConfig, o: o, forced: forced, log: log, sites: map[string]*siteLink{}}
	for _, site := range inv.Sites {
		f.sites[site.Name] = &siteLink{}
	}
	return f, nil
}

// link returns how h's site is reached, connecting to it first if this is
// the first time it is needed.
func (f *SSHFleet) link(ctx context.Context, site string) (*siteLink, error) {
	l := f.sites[site]
	if l == nil {
		return nil, fmt.Errorf("site %q is not in the inventory", site)
	}
	l.once.Do(func() {
		s, _ := f.inv.Site(site)
		f.connect(ctx, l, s)
		l.reached.Store(true)
		if f.o.OnReach != nil {
			f.o.OnReach(l.reach)
		}
	})
	return l, nil
}

// connect reaches a site through the first of its bastions that answers
// (or the forced one).
func (f *SSHFleet) connect(ctx context.Context, l *siteLink, site *inventory.Site) {
	forced := f.forced[site.Name]
	l.reach = Reach{Site: site.Name, Forced: forced != nil}
	bastions := f.inv.Bastions(site.Name)
	if forced != nil {
		bastions = []*inventory.Host{forced}
	}
	for _, b := range bastions {
		j, err := transport.DialTunnel(ctx, f.target(b, true), f.opts)
		if err == nil {
			l.via, l.j, l.reach.Via = b, j, b.Name
			f.log.Info("connected", "site", site.Name, "via", b.Name, "skipped", len(l.reach.Skipped))
			return
		}
		f.log.Warn("bastion skipped", "site", site.Name, "bastion", b.Name, "err", err)
		l.reach.Skipped = append(l.reach.Skipped, Skip{Bastion: b.Name, Err: err})
		if ctx.Err() != nil {
			break
		}
	}
	if site.Name == "" && len(l.reach.Skipped) == 1 {
		l.err = l.reach.Skipped[0].Err
		return
	}
	l.err = &SiteError{Site: site.Name, Tried: l.reach.Skipped, Forced: forced != nil}
}

// Err says why a site could not be reached, once the fleet has tried: nil
// when it was, or has not been needed. In an inventory without [sites]
// with one tunnel, it is what the tunnel answered: a problem of fwpush's
// own side (no usable key, the tunnel down or its key rejected) that kept
// every host from being tried.
func (f *SSHFleet) Err(site string) error {
	if l := f.sites[site]; l != nil && l.reached.Load() {
		return l.err
	}
	return nil
}

func siteName(site string) string {
	if site == "" {
		return "the inventory"
	}
	return "site " + site
}

// Reached says how each site the fleet has needed so far was reached, in
// the inventory's order.
func (f *SSHFleet) Reached() []Reach {
	var out []Reach
	for _, s := range f.inv.Sites {
		if l := f.sites[s.Name]; l.reached.Load() {
			l.mu.RLock()
			out = append(out, l.reach)
			l.mu.RUnlock()
		}
	}
	return out
}

// Tunnel implements Fleet.
func (f *SSHFleet) Tunnel(ctx context.Context, site string) string {
	if l, err := f.link(ctx, site); err == nil {
		if via, _ := l.current(); via != nil {
			return via.Name
		}
	}
	return ""
}

// Open implements Fleet. A host of a site that could not be reached is not
// tried: it fails with a *NotTriedError wrapping why.
func (f *SSHFleet) Open(ctx context.Context, h *inventory.Host) (Host, error) {
	l, err := f.link(ctx, h.Site)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	if l.err != nil {
		return nil, &NotTriedError{Host: h.Name, Err: l.err}
	}
	s, t, err := f.dial(ctx, l, h)
	if err != nil {
		return nil, err
	}
	return remote.New(s, remote.Options{
		Timeout:  f.inv.SSH.Timeout,
		Become:   Becomes(h, t),
		Password: f.o.BecomePass,
		User:     t.User,
		Name:     h.Name,
		NFT:      h.Backend == inventory.NFTables,
		Who:      f.o.Who,
	}), nil
}

// Prove implements Prover: transport's Knock, from here for the bastion
// carrying h's site, through it for any other host.
func (f *SSHFleet) Prove(ctx context.Context, h *inventory.Host) error {
	l, err := f.link(ctx, h.Site)
	if err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	if l.err != nil {
		return &NotTriedError{Host: h.Name, Err: l.err}
	}
	via, j := l.current()
	err = j.Knock(ctx, f.target(h, via == h))
	if err == nil || ctx.Err() != nil {
		return err
	}
	// As a dial does (see dial): a knock that failed because the way to
	// the host was lost fails over to a bastion that answers, and says
	// so (a *LinkError) when none does; the policy is not to blame.
	if !errors.Is(err, transport.ErrTunnelDown) && (via == h || j.Alive(ctx) == nil) {
		return err
	}
	via, j, ferr := f.failover(ctx, l, j, err)
	if ferr != nil {
		return ferr
	}
	return j.Knock(ctx, f.target(h, via == h))
}

// OpenFresh implements Fleet.
func (f *SSHFleet) OpenFresh(ctx context.Context, h *inventory.Host) (Host, error) {
	if l := f.sites[h.Site]; l != nil && l.reached.Load() {
		if via, j := l.current(); via == h {
			if err := j.Reconnect(ctx); err != nil {
				return nil, err
			}
		}
	}
	return f.Open(ctx, h)
}

// Close closes every site's connection and everything through it. A site
// not reached yet never will be.
func (f *SSHFleet) Close() error {
	var errs []error
	for _, s := range f.inv.Sites {
		l := f.sites[s.Name]
		l.once.Do(func() {})
		if _, j := l.current(); j != nil {
			errs = append(errs, j.Close())
		}
	}
	return errors.Join(errs...)
}

// target returns how fwpush reaches h: the bastion carrying its site
// (public) at its public address, every other host (another bastion too)
// at its private address, through that one. OpenSSH's client
// configuration fills what the inventory leaves out: the user and port it
// did not write, and the identity files (which Options.Identity
// overrides). The address is always the inventory's.
func (f *SSHFleet) target(h *inventory.Host, public bool) transport.Target {
	return TargetFor(h, public, f.cfg)
}

// TargetFor is h at its public address (public) or its private one, with
// what cfg says of it filled in (see target): how fwpush dials it, as
// fwpush ssh-config shows.
func TargetFor(h *inventory.Host, public bool, cfg *transport.SSHConfig) transport.Target {
	ip := h.PrivateIP
	if public {
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

// Becomes reports whether fwpush becomes root with sudo on h, reached as
// t: as the inventory says, and where it says nothing, whenever the login
// user (who may come from ssh_config) is not root.
func Becomes(h *inventory.Host, t transport.Target) bool {
	if !h.Given.Become {
		return t.User != "root"
	}
	return h.Become == inventory.BecomeSudo
}

// NotTried is the status of a host fwpush did not try to reach because of
// a problem on the way to it: of its own side (no usable key), or of the
// site's bastions (all down, or their keys rejected). That problem is
// reported once, not as every host's.
const NotTried Status = "not tried"

// NotTriedError is the error of a host that was not tried; Err is the
// problem that stopped every host of its site (of the fleet, without
// sites), the same for each.
type NotTriedError struct {
	Host string
	Err  error
}

func (e *NotTriedError) Error() string {
	return "host " + e.Host + ": not tried: " + e.Err.Error()
}

func (e *NotTriedError) Unwrap() error { return e.Err }

// Unreached is the fleet of an inventory whose credentials could not be
// loaded, or that cannot be reached at all (err): no host is tried, and
// each fails with a *NotTriedError wrapping err, so that the caller
// reports err once and every host as NotTried.
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

func (u unreached) Tunnel(context.Context, string) string { return "" }
