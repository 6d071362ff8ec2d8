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
}

// plus combines samples of processes that ran in one scenario: CPU adds
// up, the peak memory is the largest, wall time is the caller's to set.
func (s Sample) plus(o Sample) Sample {
	return Sample{Wall: s.Wall, CPU: s.CPU + o.CPU, MaxRSS: max(s.MaxRSS, o.MaxRSS), LauncherRSS: max(s.LauncherRSS, o.LauncherRSS)}
}

// Measurement is every sample of one scenario at one fleet size, with
// their medians and ranges.
type Measurement struct {
	Scenario Scenario `json:"scenario"`
	Label    string   `json:"label"`
	Hosts    int      `json:"hosts"`
	Samples  []Sample `json:"samples"`
	Wall     Stat     `json:"wall_seconds"`
	CPU      Stat     `json:"cpu_seconds"`
	MaxRSS   Stat     `json:"max_rss_mib"`
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
	Date     time.Time `json:"date"`
	Machine  Machine   `json:"machine"`
	Runs     int       `json:"runs"`
	Sizes    []int     `json:"sizes"`
	Tools    []Tool    `json:"tools"`
	Parallel int       `json:"parallel"`
	// Load is the least and the greatest 1-minute load average seen before
	// a measurement: the machine may be shared with other work.
	Load         [2]float64     `json:"load"`
	Measurements []*Measurement `json:"measurements"`
}

func (r *Results) add(s Scenario, hosts int, sample Sample) {
	m := r.Get(s, hosts)
	if m == nil {
		m = &Measurement{Scenario: s, Label: label(s), Hosts: hosts}
		r.Measurements = append(r.Measurements, m)
	}
	m.Samples = append(m.Samples, sample)
	var wall, cpu, rss []float64
	for _, x := range m.Samples {
		wall = append(wall, x.Wall.Seconds())
		cpu = append(cpu, x.CPU.Seconds())
		rss = append(rss, float64(x.MaxRSS)/(1<<20))
	}
	m.Wall, m.CPU, m.MaxRSS = stat(wall), stat(cpu), stat(rss)
}

// Get returns the measurement of scenario s at a fleet size, or nil.
func (r *Results) Get(s Scenario, hosts int) *Measurement {
	for _, m := range r.Measurements {
		if m.Scenario == s && m.Hosts == hosts {
			return m
		}
	}
	return nil
}

// has reports whether any size has samples of s.
func (r *Results) has(s Scenario) bool {
	for _, m := range r.Measurements {
		if m.Scenario == s {
			return true
		}
	}
	return false
}

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
