package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
)

// Probe is one TCP connection attempt, from a host of the fleet (over SSH)
// or from the controller, the machine fwpush runs on (locally).
type Probe struct {
	From *inventory.Host // nil: the controller
	Addr netip.AddrPort
	// Expect is what the probe should find. Probes expected reachable go
	// first and measure their source's round-trip time, which sets how long
	// the others wait (see ProbeOptions); it does not change how a result
	// is read.
	Expect roles.Reach
}

// Observation is what a probe found. Reach is roles.Reachable when the
// connection was accepted or actively refused (the SYN got through every
// firewall on the way and something answered), roles.Filtered when it timed
// out; it is "" when the probe could not be made, and Err says why.
type Observation struct {
	Reach roles.Reach
	// Detail is how the probe ended: "connected", "refused", "timed out".
	Detail string
	// Took is how long the answer took, or how long the probe waited.
	Took time.Duration
	Err  error
}

// ProbeOptions shape a round of probes.
type ProbeOptions struct {
	// Timeout is the most a probe waits for an answer; 0 means
	// DefaultProbeTimeout. A policy drops packets rather than rejecting
	// them, so a filtered probe can only end by timing out. To keep that
	// short, each source measures its round-trip time on the probes that
	// are answered, as nmap does, and the probes expected to be filtered
	// wait Factor times the slowest answer, at least Floor and at most
	// Timeout: a slow link still gets the whole Timeout.
	Timeout time.Duration
	// Floor is the least an adaptive timeout waits; 0 means DefaultFloor.
	Floor time.Duration
	// Factor multiplies the slowest answer; 0 means DefaultFactor.
	Factor int
	// Parallel is the most hosts probed from at once; 0 means the
	// inventory's parallel.
	Parallel int
	// Batch is the most probes one host runs at once; 0 means DefaultBatch.
	Batch int
	// Logger receives per-host progress; nil discards it.
	Logger *slog.Logger
	// DialLocal opens the controller's connections; nil means a net.Dialer.
	DialLocal func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnProbed, when set, is called with the number of probes just made
	// (or failed): each of the controller's as it ends, a host's all at
	// once as its session ends. It is called from several goroutines.
	OnProbed func(n int)
}

// Defaults of ProbeOptions.
const (
	DefaultProbeTimeout = 2 * time.Second
	DefaultFloor        = 200 * time.Millisecond
	DefaultFactor       = 10
	DefaultBatch        = 64
)

// RunProbes makes every probe and returns one Observation per probe, in
// the same order. The hosts probe in parallel (at most opts.Parallel at
// once), each over one SSH session that runs all of its probes, in batches
// of opts.Batch at once; the controller's probes run locally meanwhile.
// Every probe is bounded by opts.Timeout and every host by the time its
// batches need plus the inventory's SSH timeout. A host that cannot be
// reached fails its own probes only.
func RunProbes(ctx context.Context, inv *inventory.Inventory, probes []Probe, fleet Fleet, opts ProbeOptions) []Observation {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultProbeTimeout
	}
	if opts.Floor <= 0 {
		opts.Floor = DefaultFloor
	}
	if opts.Factor <= 0 {
		opts.Factor = DefaultFactor
	}
	if opts.Parallel <= 0 {
		opts.Parallel = max(inv.SSH.Parallel, 1)
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialLocal == nil {
		var nd net.Dialer
		opts.DialLocal = nd.DialContext
	}
	obs := make([]Observation, len(probes))
	var local []int
	byHost := map[string][]int{}
	var order []*inventory.Host
	for i, p := range probes {
		if p.From == nil {
			local = append(local, i)
			continue
		}
		if _, ok := byHost[p.From.Name]; !ok {
			order = append(order, p.From)
		}
		byHost[p.From.Name] = append(byHost[p.From.Name], i)
	}

	// The controller's probes take no host's place.
	localDone := make(chan struct{})
	go func() {
		defer close(localDone)
		probeLocal(ctx, probes, local, obs, opts)
	}()
	var g errgroup.Group
	g.SetLimit(opts.Parallel)
	for _, h := range order {
		g.Go(func() error {
			probeRemote(ctx, inv, h, probes, byHost[h.Name], obs, fleet, opts)
			return nil
		})
	}
	_ = g.Wait() // every goroutine returns nil: its errors are in its observations
	<-localDone
	return obs
}

// probeRemote runs host h's probes (indices idx of probes) in one SSH
// session and stores their observations.
func probeRemote(ctx context.Context, inv *inventory.Inventory, h *inventory.Host, probes []Probe, idx []int, obs []Observation, fleet Fleet, opts ProbeOptions) {
	log := opts.Logger.With("host", h.Name)
	if opts.OnProbed != nil {
		defer opts.OnProbed(len(idx))
	}
	failAll := func(err error) {
		for _, i := range idx {
			obs[i] = Observation{Err: fmt.Errorf("probe from %s: %w", h.Name, err)}
		}
	}
	// Each phase runs its batches one after the other.
	var first int
	rp := make([]remote.Probe, len(idx))
	for k, i := range idx {
		rp[k] = remote.Probe{Addr: probes[i].Addr, Calibrate: probes[i].Expect == roles.Reachable}
		if rp[k].Calibrate {
			first++
		}
	}
	batches := (first+opts.Batch-1)/opts.Batch + (len(idx)-first+opts.Batch-1)/opts.Batch
	ssh := inv.SSH.Timeout
	if ssh <= 0 {
		ssh = inventory.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(batches)*(opts.Timeout+time.Second)+2*ssh)
	defer cancel()

	start := time.Now()
	host, err := fleet.Open(ctx, h)
	if err != nil {
		failAll(err)
		return
	}
	defer host.Close()
	got, timeout, err := host.Probe(ctx, rp, remote.ProbeOptions{Timeout: opts.Timeout, Floor: opts.Floor, Factor: opts.Factor, Batch: opts.Batch})
	if err != nil {
		failAll(err)
		return
	}
	for k, i := range idx {
		o := observe(got[k])
		if o.Err != nil {
			o.Err = fmt.Errorf("probe from %s to %s: %w", h.Name, probes[i].Addr, o.Err)
		}
		obs[i] = o
	}
	log.Debug("probed", "probes", len(idx), "timeout", timeout, "took", time.Since(start))
}

// observe reads a remote probe's result.
func observe(r remote.ProbeResult) Observation {
	switch r.Result {
	case "connected", "refused":
		return Observation{Reach: roles.Reachable, Detail: r.Result, Took: r.Took}
	case "timeout":
		return Observation{Reach: roles.Filtered, Detail: "timed out", Took: r.Took}
	}
	return Observation{Err: r.Err}
}

// probeLocal makes the controller's probes (indices idx), many at once,
// the ones expected to be reachable first: their answers set the timeout
// of the others, as on the hosts.
func probeLocal(ctx context.Context, probes []Probe, idx []int, obs []Observation, opts ProbeOptions) {
	var first, second []int
	for _, i := range idx {
		if probes[i].Expect == roles.Reachable {
			first = append(first, i)
		} else {
			second = append(second, i)
		}
	}
	var mu sync.Mutex
	var slowest time.Duration
	phase := func(idx []int, timeout time.Duration) {
		var g errgroup.Group
		g.SetLimit(opts.Batch)
		for _, i := range idx {
			g.Go(func() error {
				obs[i] = dialProbe(ctx, probes[i].Addr, timeout, opts)
				if opts.OnProbed != nil {
					opts.OnProbed(1)
				}
				if obs[i].Reach == roles.Reachable {
					mu.Lock()
					slowest = max(slowest, obs[i].Took)
					mu.Unlock()
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	phase(first, opts.Timeout)
	phase(second, remote.AdaptiveTimeout(slowest, remote.ProbeOptions{Timeout: opts.Timeout, Floor: opts.Floor, Factor: opts.Factor}))
}

func dialProbe(ctx context.Context, addr netip.AddrPort, timeout time.Duration, opts ProbeOptions) Observation {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	conn, err := opts.DialLocal(ctx, "tcp", addr.String())
	took := time.Since(start)
	if err == nil {
		conn.Close()
		return Observation{Reach: roles.Reachable, Detail: "connected", Took: took}
	}
	o := classifyDial(ctx, addr, err)
	o.Took = took
	return o
}

// classifyDial tells a refused connection (reachable) and a timeout
// (filtered) from every other failure, which proves nothing.
func classifyDial(ctx context.Context, addr netip.AddrPort, err error) Observation {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Observation{Reach: roles.Reachable, Detail: "refused"}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Observation{Reach: roles.Filtered, Detail: "timed out"}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return Observation{Reach: roles.Filtered, Detail: "timed out"}
	}
	return Observation{Err: fmt.Errorf("probe from the controller to %s: %w", addr, err)}
}
