package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Pinger is a Session that can measure a round trip to its host.
type Pinger interface {
	Ping(ctx context.Context) (time.Duration, error)
}

// Probe is one TCP connection attempt made by the host.
type Probe struct {
	Addr netip.AddrPort
	// Calibrate marks a probe expected to be answered: such probes go
	// first, and how long their answers take sets how long the others
	// wait (see ProbeOptions).
	Calibrate bool
}

// ProbeOptions shape one host's probes.
type ProbeOptions struct {
	// Timeout is the most any probe waits for an answer.
	Timeout time.Duration
	// Floor and Factor make the adaptive timeout of the probes that do not
	// calibrate (see AdaptiveTimeout).
	Floor  time.Duration
	Factor int
	// Batch is the most probes run at once.
	Batch int
}

// AdaptiveTimeout is how long a probe expected to be filtered waits, given
// the slowest answer its source had to a probe expected reachable (0:
// none): Factor × that answer, at least Floor and at most Timeout; without
// an answer, the whole Timeout, so that a slow link is never cut short.
// The controller's probes use it; a host computes it again (adapt in
// scripts/probe.bash), between its two phases, which TestProbeAdapt holds
// to this one.
func AdaptiveTimeout(slowest time.Duration, o ProbeOptions) time.Duration {
	if slowest <= 0 {
		return o.Timeout
	}
	return min(max(slowest*time.Duration(o.Factor), o.Floor), o.Timeout)
}

// ProbeResult is what one probe found.
type ProbeResult struct {
	// Result is "connected", "refused" or "timeout"; "" when the probe
	// could not be made, and Err says why.
	Result string
	// Took is how long the answer took, or the timeout waited.
	Took time.Duration
	Err  error
}

// Probe makes every probe from the host in one round trip and returns one
// result per probe, in order, with the timeout that the probes which did
// not calibrate waited.
func (h *Host) Probe(ctx context.Context, probes []Probe, o ProbeOptions) ([]ProbeResult, time.Duration, error) {
	var in bytes.Buffer
	us := func(d time.Duration) int64 { return max(d.Microseconds(), 1) }
	// A host with no probe to calibrate on calibrates on the round trip
	// of its own SSH connection, which crosses the same private network.
	var hint int64
	if p, ok := h.sess.(Pinger); ok && !slices.ContainsFunc(probes, func(p Probe) bool { return p.Calibrate }) && len(probes) > 0 {
		if rtt, err := p.Ping(ctx); err == nil {
			hint = us(rtt)
		}
	}
	fmt.Fprintf(&in, "%d %d %d %d %d\n", us(o.Timeout), max(o.Batch, 1), us(o.Floor), max(o.Factor, 1), hint)
	for i, p := range probes {
		phase := 2
		if p.Calibrate {
			phase = 1
		}
		fmt.Fprintf(&in, "%d %s %d %d\n", i, p.Addr.Addr(), p.Addr.Port(), phase)
	}
	// Each phase runs its batches one after the other, each batch within
	// the timeout.
	var first int
	for _, p := range probes {
		if p.Calibrate {
			first++
		}
	}
	b := max(o.Batch, 1)
	batches := (first+b-1)/b + (len(probes)-first+b-1)/b
	res, err := h.run(ctx, "probe", sent().probe, time.Duration(batches)*(o.Timeout+time.Second)+h.o.Timeout, in.Bytes())
	if err != nil {
		return nil, 0, err
	}
	results, timeout := parseProbeOutput(string(res.Stdout), len(probes))
	for i := range results {
		if results[i].Result == "" && results[i].Err == nil {
			results[i].Err = errors.New("the host gave no answer for it")
		}
	}
	return results, timeout, nil
}

// parseProbeOutput reads the probe script's "ID RESULT MICROSECONDS" and
// "timeout MICROSECONDS" lines.
func parseProbeOutput(out string, n int) ([]ProbeResult, time.Duration) {
	results := make([]ProbeResult, n)
	var timeout time.Duration
	for line := range strings.SplitSeq(out, "\n") {
		id, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		result, detail, _ := strings.Cut(rest, " ")
		if id == "timeout" {
			if v, err := strconv.ParseInt(result, 10, 64); err == nil {
				timeout = time.Duration(v) * time.Microsecond
			}
			continue
		}
		i, err := strconv.Atoi(id)
		if err != nil || i < 0 || i >= n {
			continue
		}
		switch result {
		case "connected", "refused", "timeout":
			v, _ := strconv.ParseInt(detail, 10, 64)
			results[i] = ProbeResult{Result: result, Took: time.Duration(v) * time.Microsecond}
		default:
			if detail == "" {
				detail = rest
			}
			results[i] = ProbeResult{Err: errors.New(strings.TrimSpace(detail))}
		}
	}
	return results, timeout
}
