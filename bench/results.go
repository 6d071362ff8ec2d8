package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Sample is one run of one scenario: its wall time, and the CPU time (user
// and system) and peak resident memory of the client processes, as wait4
// reports them.
type Sample struct {
	Wall time.Duration `json:"wall_ns"`
	CPU  time.Duration `json:"cpu_ns"`
	// MaxRSS is the measured program's peak RSS, 0 when unknown.
	MaxRSS int64 `json:"max_rss_bytes"`
	// LauncherRSS is the peak RSS of the launcher that started it, which
	// MaxRSS must exceed to be the program's own (see launched).
	LauncherRSS int64 `json:"launcher_rss_bytes,omitempty"`
	// TunnelConns and TunnelTurns are what the relay carried during the
	// run, at round-trip times other than 0: the TCP connections to the
	// tunnel, and the clients' turns on them (see relay.Stats).
	TunnelConns int64 `json:"tunnel_conns,omitempty"`
	TunnelTurns int64 `json:"tunnel_turns,omitempty"`
}

// plus combines samples of processes that ran in one scenario: CPU,
// connections and turns add up, the peak memory is the largest, wall
// time is the caller's to set.
func (s Sample) plus(o Sample) Sample {
	return Sample{Wall: s.Wall, CPU: s.CPU + o.CPU, MaxRSS: max(s.MaxRSS, o.MaxRSS), LauncherRSS: max(s.LauncherRSS, o.LauncherRSS),
		TunnelConns: s.TunnelConns + o.TunnelConns, TunnelTurns: s.TunnelTurns + o.TunnelTurns}
}

// Measurement is every sample of one scenario at one fleet size and
// round-trip time, with their medians and ranges.
type Measurement struct {
	Scenario Scenario `json:"scenario"`
	Label    string   `json:"label"`
	Hosts    int      `json:"hosts"`
	// RTT is the round-trip time the relay added between the controller
	// and the tunnel; 0: none, the lab's own links.
	RTT     time.Duration `json:"rtt_ns,omitempty"`
	Samples []Sample      `json:"samples"`
	Wall    Stat          `json:"wall_seconds"`
	CPU     Stat          `json:"cpu_seconds"`
	MaxRSS  Stat          `json:"max_rss_mib"`
	// TunnelConns and TunnelTurns summarise the samples' (RTT > 0 only).
	TunnelConns Stat `json:"tunnel_conns,omitzero"`
	TunnelTurns Stat `json:"tunnel_turns,omitzero"`
}

// Stat summarises samples: median, least and greatest.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func stat(vals []float64) Stat {
	if len(vals) == 0 {
		return Stat{}
	}
	v := slices.Clone(vals)
	slices.Sort(v)
	mid := len(v) / 2
	med := v[mid]
	if len(v)%2 == 0 {
		med = (v[mid-1] + v[mid]) / 2
	}
	return Stat{Median: med, Min: v[0], Max: v[len(v)-1]}
}

// Results is everything one bench measured.
type Results struct {
	Date    time.Time `json:"date"`
	Machine Machine   `json:"machine"`
	// Runs is the number of runs at RTT 0, RTTRuns at every other RTT.
	Runs    int `json:"runs"`
	RTTRuns int `json:"rtt_runs,omitempty"`
	// Sizes are every fleet size measured, at one RTT or more.
	Sizes []int `json:"sizes"`
	// RTTs are the round-trip times measured at, in order; none in the
	// results of a bench that knew only RTT 0.
	RTTs     []time.Duration `json:"rtts_ns,omitempty"`
	Tools    []Tool          `json:"tools"`
	Parallel int             `json:"parallel"`
	// Load is the least and the greatest 1-minute load average seen before
	// a measurement: the machine may be shared with other work.
	Load         [2]float64     `json:"load"`
	Measurements []*Measurement `json:"measurements"`
	// Scale is the scale part, one per size, and ScaleRuns its runs; none
	// when it was not measured.
	Scale     []*Scale `json:"scale,omitempty"`
	ScaleRuns int      `json:"scale_runs,omitempty"`
	// Servers is the servers part, one per size, and ServerRuns its runs
	// of CPU time; none when it was not measured.
	Servers    []*Servers `json:"servers,omitempty"`
	ServerRuns int        `json:"server_runs,omitempty"`
}

func (r *Results) add(s Scenario, hosts int, rtt time.Duration, sample Sample) {
	m := r.Get(s, hosts, rtt)
	if m == nil {
		m = &Measurement{Scenario: s, Label: label(s), Hosts: hosts, RTT: rtt}
		r.Measurements = append(r.Measurements, m)
	}
	m.Samples = append(m.Samples, sample)
	var wall, cpu, rss, conns, turns []float64
	for _, x := range m.Samples {
		wall = append(wall, x.Wall.Seconds())
		cpu = append(cpu, x.CPU.Seconds())
		rss = append(rss, float64(x.MaxRSS)/(1<<20))
		conns = append(conns, float64(x.TunnelConns))
		turns = append(turns, float64(x.TunnelTurns))
	}
	m.Wall, m.CPU, m.MaxRSS = stat(wall), stat(cpu), stat(rss)
	if rtt > 0 {
		m.TunnelConns, m.TunnelTurns = stat(conns), stat(turns)
	}
}

// Get returns the measurement of scenario s at a fleet size and
// round-trip time, or nil.
func (r *Results) Get(s Scenario, hosts int, rtt time.Duration) *Measurement {
	for _, m := range r.Measurements {
		if m.Scenario == s && m.Hosts == hosts && m.RTT == rtt {
			return m
		}
	}
	return nil
}

// rtts are the round-trip times of the results: RTT 0 alone for those of
// a bench that knew no other.
func (r *Results) rtts() []time.Duration {
	if len(r.RTTs) == 0 {
		return []time.Duration{0}
	}
	return r.RTTs
}

// runsAt is the number of runs at rtt.
func (r *Results) runsAt(rtt time.Duration) int {
	if rtt == 0 || r.RTTRuns == 0 {
		return r.Runs
	}
	return r.RTTRuns
}

// sizesAt are the fleet sizes measured at rtt, in order.
func (r *Results) sizesAt(rtt time.Duration) []int {
	var out []int
	for _, n := range r.Sizes {
		for _, m := range r.Measurements {
			if m.Hosts == n && m.RTT == rtt {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// has reports whether any size has samples of s at rtt.
func (r *Results) has(s Scenario, rtt time.Duration) bool {
	for _, m := range r.Measurements {
		if m.Scenario == s && m.RTT == rtt {
			return true
		}
	}
	return false
}

// ReadJSON reads the results writeJSON wrote (fwbench -json, make bench's
// bin/bench.json).
func ReadJSON(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// writeJSON writes r to path, for ReadJSON.
func writeJSON(path string, r *Results) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// sampleLoad widens r.Load with the machine's 1-minute load average now.
func (r *Results) sampleLoad() {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	var l float64
	if _, err := fmt.Sscan(string(data), &l); err != nil {
		return
	}
	if r.Load == [2]float64{} {
		r.Load = [2]float64{l, l}
	}
	r.Load[0], r.Load[1] = min(r.Load[0], l), max(r.Load[1], l)
}
