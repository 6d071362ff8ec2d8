package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// Probe is one TCP connection attempt, from a host of the fleet (over SSH)
// or from the controller, the machine fwpush runs on (locally).
type Probe struct {
	From *inventory.Host // nil: the controller
	Addr netip.AddrPort
}

// Observation is what a probe found. Reach is roles.Reachable when the
// connection was accepted or actively refused (the SYN got through every
// firewall on the way and something answered), roles.Filtered when it timed
// out; it is "" when the probe could not be made, and Err says why.
type Observation struct {
	Reach roles.Reach
	// Detail is how the probe ended: "connected", "refused", "timed out".
	Detail string
	Err    error
}

// ProbeOptions shape a round of probes.
type ProbeOptions struct {
	// Timeout bounds each connection attempt; 0 means DefaultProbeTimeout.
	// A policy drops packets rather than rejecting them, so a filtered
	// probe always takes this long.
	Timeout time.Duration
	// Parallel is the most hosts probed from at once; 0 means the
	// inventory's parallel.
	Parallel int
	// Batch is the most probes one host runs at once; 0 means DefaultBatch.
	Batch int
	// Logger receives per-host progress; nil discards it.
	Logger *slog.Logger
	// DialLocal opens the controller's connections; nil means a net.Dialer.
	DialLocal func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults of ProbeOptions.
const (
	DefaultProbeTimeout = 2 * time.Second
	DefaultBatch        = 64
)

// cmdProbe connects, on the host it runs on, to every "ID ADDR PORT" line
// of its stdin (after a first line with the timeout in seconds and the
// batch size) and prints one "ID RESULT [DETAIL]" line per probe: connected,
// refused, timeout, or error with what bash said. It needs nothing a minimal
// Debian server lacks: bash's /dev/tcp and coreutils' timeout. The
// addresses reach the connecting shell as arguments, never as code.
const cmdProbe = `PATH=$PATH:/usr/bin:/bin
command -v bash >/dev/null 2>&1 || { echo "bash is not installed: fwpush probes with bash's /dev/tcp" >&2; exit 3; }
command -v timeout >/dev/null 2>&1 || { echo "timeout (coreutils) is not installed" >&2; exit 3; }
exec bash -c '
set -f
read -r T B || exit 2
case $T in ""|*[!0-9.]*) echo "bad timeout: $T" >&2; exit 2 ;; esac
case $B in ""|*[!0-9]*|0) echo "bad batch size: $B" >&2; exit 2 ;; esac
probe() {
  out=$(timeout "$T" bash -c "exec 3<>\"/dev/tcp/\$0/\$1\"" "$2" "$3" 2>&1)
  rc=$?
  case $rc:$out in
  0:*) echo "$1 connected" ;;
  124:*) echo "$1 timeout" ;;
  *"Connection refused"*) echo "$1 refused" ;;
  *) echo "$1 error exit $rc:" $out ;;
  esac
}
n=0
while read -r id a p; do
  case $id in ""|*[!0-9]*) continue ;; esac
  case $p in ""|*[!0-9]*) echo "$id error bad port: $p"; continue ;; esac
  case $a in ""|*[!0-9a-fA-F.:]*) echo "$id error bad address: $a"; continue ;; esac
  probe "$id" "$a" "$p" &
  n=$((n+1))
  [ $((n % B)) -ne 0 ] || wait
done
wait
' fwpush-probe`

// RunProbes makes every probe and returns one Observation per probe, in
// the same order. The hosts probe in parallel (at most opts.Parallel at
// once), each over one SSH session that runs all of its probes, in batches
// of opts.Batch at once; the controller's probes run locally meanwhile.
// Every probe is bounded by opts.Timeout and every host by the time its
// batches need plus the inventory's SSH timeout. A host that cannot be
// reached fails its own probes only.
func RunProbes(ctx context.Context, inv *inventory.Inventory, probes []Probe, d Dialer, opts ProbeOptions) []Observation {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultProbeTimeout
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
			probeRemote(ctx, inv, h, probes, byHost[h.Name], obs, d, opts)
			return nil
		})
	}
	_ = g.Wait() // every goroutine returns nil: its errors are in its observations
	<-localDone
	return obs
}

// probeRemote runs host h's probes (indices idx of probes) in one SSH
// session and stores their observations.
func probeRemote(ctx context.Context, inv *inventory.Inventory, h *inventory.Host, probes []Probe, idx []int, obs []Observation, d Dialer, opts ProbeOptions) {
	log := opts.Logger.With("host", h.Name)
	failAll := func(err error) {
		for _, i := range idx {
			obs[i] = Observation{Err: err}
		}
	}
	batches := (len(idx) + opts.Batch - 1) / opts.Batch
	ssh := inv.SSH.Timeout
	if ssh <= 0 {
		ssh = inventory.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(batches)*(opts.Timeout+time.Second)+2*ssh)
	defer cancel()

	start := time.Now()
	sess, err := d.Dial(ctx, TargetFor(inv, h))
	if err != nil {
		failAll(fmt.Errorf("probe from %s: %w", h.Name, err))
		return
	}
	defer sess.Close()

	var in bytes.Buffer
	fmt.Fprintf(&in, "%s %d\n", strconv.FormatFloat(opts.Timeout.Seconds(), 'f', -1, 64), opts.Batch)
	for _, i := range idx {
		fmt.Fprintf(&in, "%d %s %d\n", i, probes[i].Addr.Addr(), probes[i].Addr.Port())
	}
	res, err := sess.Run(ctx, cmdProbe, in.Bytes())
	if err != nil {
		failAll(fmt.Errorf("probe from %s: %w", h.Name, err))
		return
	}
	got := parseProbeOutput(string(res.Stdout))
	for _, i := range idx {
		o, ok := got[i]
		if !ok {
			o = Observation{Err: fmt.Errorf("probe from %s to %s: the host gave no answer for it", h.Name, probes[i].Addr)}
		} else if o.Err != nil {
			o.Err = fmt.Errorf("probe from %s to %s: %w", h.Name, probes[i].Addr, o.Err)
		}
		obs[i] = o
	}
	log.Debug("probed", "probes", len(idx), "took", time.Since(start))
}

// parseProbeOutput reads cmdProbe's "ID RESULT [DETAIL]" lines.
func parseProbeOutput(out string) map[int]Observation {
	got := map[int]Observation{}
	for line := range strings.SplitSeq(out, "\n") {
		id, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		i, err := strconv.Atoi(id)
		if err != nil {
			continue
		}
		result, detail, _ := strings.Cut(rest, " ")
		switch result {
		case "connected":
			got[i] = Observation{Reach: roles.Reachable, Detail: "connected"}
		case "refused":
			got[i] = Observation{Reach: roles.Reachable, Detail: "refused"}
		case "timeout":
			got[i] = Observation{Reach: roles.Filtered, Detail: "timed out"}
		default:
			if detail == "" {
				detail = rest
			}
			got[i] = Observation{Err: errors.New(strings.TrimSpace(detail))}
		}
	}
	return got
}

// probeLocal makes the controller's probes (indices idx), many at once:
// each is one connection attempt.
func probeLocal(ctx context.Context, probes []Probe, idx []int, obs []Observation, opts ProbeOptions) {
	var g errgroup.Group
	g.SetLimit(opts.Batch)
	for _, i := range idx {
		g.Go(func() error {
			obs[i] = dialProbe(ctx, probes[i].Addr, opts)
			return nil
		})
	}
	_ = g.Wait()
}

func dialProbe(ctx context.Context, addr netip.AddrPort, opts ProbeOptions) Observation {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	conn, err := opts.DialLocal(ctx, "tcp", addr.String())
	if err == nil {
		conn.Close()
		return Observation{Reach: roles.Reachable, Detail: "connected"}
	}
	return classifyDial(ctx, addr, err)
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
