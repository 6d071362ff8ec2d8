package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/transport"
)

// A site's standby bastion takes over in the middle of a command: when the
// connection to the bastion carrying a site is lost (its link cut, the
// bastion gone), the next host opened — a host not yet worked on, or the
// fresh connection that confirms a host already applied — finds it out,
// and the site is reached again through the first of its bastions that
// answers, in the inventory's order of preference (the same one again, if
// it is back). Hosts in the middle of a step when the link went fail that
// step as they would on any lost connection; a host applied already is
// confirmed through the standby, which proves that the new rules let
// fwpush in from it, or is left to its guard.

// current returns the bastion carrying the site and the dialer through it.
func (l *siteLink) current() (*inventory.Host, *transport.JumpDialer) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.via, l.j
}

// errLinkUp is Relink's answer for a way to a host that still carries.
var errLinkUp = errors.New("the way to the host carries")

// Relink says whether the way to h had been lost since h was last opened:
// nil when a bastion carries its site again, so that a step that failed
// on a connection through the old way, before it changed anything, is
// worth trying again through the new one; a *LinkError when the way is
// lost and no bastion of the site answers; errLinkUp when the way
// carries, and h failed by itself. It finds out, failing over if need be.
func (f *SSHFleet) Relink(ctx context.Context, h *inventory.Host) error {
	l := f.sites[h.Site]
	if l == nil || !l.reached.Load() || l.err != nil {
		return errLinkUp
	}
	l.mu.RLock()
	j, gen := l.j, l.gen
	l.mu.RUnlock()
	if opened, ok := f.opened.Load(h.Name); ok && opened.(int) != gen {
		return nil
	}
	err := j.Alive(ctx)
	if err == nil || ctx.Err() != nil {
		return errLinkUp
	}
	_, _, err = f.failover(ctx, l, j, err)
	return err
}

// Moved reports whether the way to h has changed since h was last opened:
// its site failed over to another bastion meanwhile, and what was opened
// through the old one is cut off with it.
func (f *SSHFleet) Moved(h *inventory.Host) bool {
	l := f.sites[h.Site]
	if l == nil {
		return false
	}
	l.mu.RLock()
	gen := l.gen
	l.mu.RUnlock()
	opened, ok := f.opened.Load(h.Name)
	return ok && opened.(int) != gen
}

// dial opens a session to h through its site's link, failing over to the
// site's bastions when the link is found lost: the tunnel connection has
// ended, or a dial through it failed and the bastion no longer answers
// (a cut link drops packets: the dial alone cannot tell which end is
// silent). It returns the target dialled.
func (f *SSHFleet) dial(ctx context.Context, l *siteLink, h *inventory.Host) (transport.Session, transport.Target, error) {
	l.mu.RLock()
	via, j, gen := l.via, l.j, l.gen
	l.mu.RUnlock()
	f.opened.Store(h.Name, gen)
	t := f.target(h, via == h)
	s, err := j.Dial(ctx, t)
	if err == nil {
		return s, t, nil
	}
	var hk *transport.HostKeyError
	if errors.As(err, &hk) || ctx.Err() != nil {
		return nil, t, err
	}
	if !errors.Is(err, transport.ErrTunnelDown) && (via == h || j.Alive(ctx) == nil) {
		return nil, t, err // the way is there: the host failed
	}
	via, j, ferr := f.failover(ctx, l, j, err)
	if ferr != nil {
		return nil, t, ferr
	}
	l.mu.RLock()
	f.opened.Store(h.Name, l.gen)
	l.mu.RUnlock()
	t = f.target(h, via == h)
	s, err = j.Dial(ctx, t)
	return s, t, err
}

// failover reaches l's site again, its dialer lost having lost its
// connection (cause): through the first of the site's bastions that
// answers (only the one --via names, if it does), which then carries the
// site, as OnReach is told. Concurrent callers coalesce: one that waited
// while another failed over takes its result, and a failover that failed
// stands for a timeout, rather than every host trying every bastion again.
// The error is a *LinkError.
func (f *SSHFleet) failover(ctx context.Context, l *siteLink, lost *transport.JumpDialer, cause error) (*inventory.Host, *transport.JumpDialer, error) {
	l.failing.Lock()
	defer l.failing.Unlock()
	via, j := l.current()
	if j != lost {
		return via, j, nil // failed over already
	}
	if l.lost != nil && time.Since(l.lostAt) < f.inv.SSH.Timeout {
		return nil, nil, l.lost
	}
	l.mu.RLock()
	site, forced := l.reach.Site, l.reach.Forced
	l.mu.RUnlock()
	bastions := f.inv.Bastions(site)
	if b := f.forced[site]; b != nil {
		bastions = []*inventory.Host{b}
	}
	f.log.Warn("the connection to the bastion was lost; failing over", "site", site, "bastion", via.Name, "err", cause)
	skipped := []Skip{{Bastion: via.Name, Err: fmt.Errorf("lost during the run: %w", cause)}}
	var tried []string
	for _, b := range bastions {
		var nj *transport.JumpDialer
		var err error
		if b == via {
			nj, err = j, j.Reconnect(ctx)
		} else {
			nj, err = transport.DialTunnel(ctx, f.target(b, true), f.opts)
		}
		if err != nil {
			f.log.Warn("bastion skipped", "site", site, "bastion", b.Name, "err", err)
			if b != via {
				skipped = append(skipped, Skip{Bastion: b.Name, Err: err})
			}
			tried = append(tried, b.Name+": "+err.Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		reach := Reach{Site: site, Via: b.Name, Forced: forced}
		if b != via {
			reach.Skipped = skipped
		}
		l.mu.Lock()
		l.via, l.j, l.reach = b, nj, reach
		l.gen++
		l.mu.Unlock()
		l.lost = nil
		if nj != j {
			_ = j.Close()
		}
		f.log.Warn("failed over", "site", site, "via", b.Name)
		if f.o.OnReach != nil && b != via {
			f.o.OnReach(reach)
		}
		return b, nj, nil
	}
	l.lost = &LinkError{Site: site, Bastion: via.Name,
		Err: fmt.Errorf("%w; and no bastion of %s answers (%s)", cause, siteName(site), strings.Join(tried, "; "))}
	l.lostAt = time.Now()
	return nil, nil, l.lost
}

// relinker is a fleet that can tell that the way to a host was lost, and
// found again (SSHFleet: see Relink).
type relinker interface {
	Relink(ctx context.Context, h *inventory.Host) error
}

// readAgain says whether the read of the host, which failed with err, is
// worth one more try (again): it failed on its connection, not on the
// host's answer, and the way to the host was lost and a bastion carries
// its site again. A read changes nothing: trying it again is safe. When
// the way is lost and no bastion answers, lost says so: the read failed
// because of the way, not the host.
func (p *pusher) readAgain(ctx context.Context, err error) (again bool, lost error) {
	var re *transport.RemoteError
	if errors.As(err, &re) || ctx.Err() != nil {
		return false, nil // the host answered
	}
	rl, ok := p.fleet.(relinker)
	if !ok {
		return false, nil
	}
	switch err := rl.Relink(ctx, p.host); {
	case err == nil:
		return true, nil
	case errors.Is(err, errLinkUp):
		return false, nil
	default:
		return false, err
	}
}
