package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Alive tells a tunnel that carries from one whose packets disappear
// (its link cut): that one is closed, so that what dials through it fails
// at once with ErrTunnelDown, the way and not the host to blame.
func TestAliveFindsAFrozenTunnel(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	fz := newFreezer(t, f.tunnel.addr)
	writeFile(t, f.knownHosts,
		knownLine(fz.addr, f.tunnel.hostKeys[0].PublicKey()),
		knownLine(app1Addr, f.hosts["app-1"].hostKeys[0].PublicKey()),
	)
	opts := f.options()
	opts.Timeout = time.Second
	j, err := DialTunnel(t.Context(), Target{Name: "tunnel-1", Addr: fz.addr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Alive(t.Context()); err != nil {
		t.Fatalf("Alive on a tunnel that carries: %v", err)
	}
	// A caller that gives up proves nothing: the tunnel stays.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := j.Alive(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Alive, cancelled: %v, want context.Canceled", err)
	}
	if _, err := j.current(); err != nil {
		t.Fatalf("a cancelled Alive closed the tunnel: %v", err)
	}

	fz.freeze()
	start := time.Now()
	if err := j.Alive(t.Context()); !errors.Is(err, ErrTunnelDown) {
		t.Fatalf("Alive on a frozen tunnel: %v, want ErrTunnelDown", err)
	}
	// A hang guard, not a measure: the frozen tunnel never answers, so
	// Alive's ending at all proves its bound (its own timeout, or the
	// keepalive's, both opts.Timeout); five times that is room for load.
	if took := time.Since(start); took > 5*opts.Timeout {
		t.Errorf("Alive took %s on a frozen tunnel", took)
	}
	if _, err := j.Dial(t.Context(), f.targets["app-1"]); !errors.Is(err, ErrTunnelDown) {
		t.Errorf("Dial through the tunnel Alive found dead: %v, want ErrTunnelDown", err)
	}
}
