// Package check is the engine of fwpush check: from the inventory, the
// probes a check makes (the expectation matrix of package roles, for the
// hosts asked, less the hosts left out), and from what the probes found,
// the report: every probe against what it had to find, the matrix's cells,
// the hosts probed from, what was left out, and whether all is as
// expected. It runs nothing (runner makes the probes) and prints nothing
// (cmd does); the report's JSON form is the --json document's body
// (docs/json.md).
package check

import (
	"maps"
	"slices"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// ExcludedStatus is why a check leaves out the probes of a host that
// --limit excludes ("!bastion-1": it is down, say): they could only fail.
const ExcludedStatus = "excluded_by_limit"

// NotTried is the status of a host probed from that fwpush did not try to
// reach (its site's bastions did not answer), as run reports it.
const NotTried = "not_tried"

// Excluded returns the hosts the '!' terms of limit exclude, with
// ExcludedStatus.
func Excluded(inv *inventory.Inventory, limit string) map[string]string {
	out := map[string]string{}
	for _, h := range inv.Excluded(limit) {
		out[h] = ExcludedStatus
	}
	return out
}

// Suite is the probes a check makes: one per expectation of Matrix.
type Suite struct {
	Matrix roles.Matrix
	// LeftOut are the hosts whose probes, from or to them, are not made,
	// and why: their status in a run, or ExcludedStatus; Left counts the
	// probes left out.
	LeftOut map[string]string
	Left    int
}

// NewSuite derives the probes from or to hosts, less those from or to
// the hosts of leaveOut.
func NewSuite(inv *inventory.Inventory, hosts []*inventory.Host, leaveOut map[string]string) Suite {
	s := Suite{Matrix: roles.ExpectFor(inv, hosts), LeftOut: leaveOut}
	if len(leaveOut) == 0 {
		return s
	}
	kept := s.Matrix.Expectations[:0:0]
	for _, e := range s.Matrix.Expectations {
		_, from := leaveOut[e.From]
		_, to := leaveOut[e.To]
		if from || to {
			s.Left++
			continue
		}
		kept = append(kept, e)
	}
	s.Matrix.Expectations = kept
	return s
}

// Verdict is what one probe found. Reach is roles.Reachable when the
// connection was accepted or refused, roles.Filtered when it timed out,
// "" when the probe could not be made: Err says why, and NotTried is set
// when its source host was not tried at all.
type Verdict struct {
	Reach    roles.Reach
	Detail   string // how the probe ended: "connected", "refused", "timed out"
	Err      error
	NotTried bool
}

// Report is a check's outcome.
type Report struct {
	// Hosts are the hosts probed from, with what became of their probes.
	Hosts  []Host  `json:"hosts"`
	Probes []Probe `json:"probes"`
	Cells  []Cell  `json:"cells"`
	// Notes say which allowed flows were not probed, and which roles were
	// sampled.
	Notes []string `json:"notes"`
	// LeftOut are the hosts whose probes, from or to them, were left
	// out: the hosts a run did not finish (the check after it), and those
	// --limit excludes.
	LeftOut []LeftOut `json:"left_out,omitempty"`
	Count   Counts    `json:"counts"`
	Seconds float64   `json:"seconds"`
}

// Counts sum a report up.
type Counts struct {
	Probes     int `json:"probes"`
	Hosts      int `json:"hosts"` // hosts probed from, the controller not counted
	Expected   int `json:"as_expected"`
	Mismatches int `json:"mismatches"`
	Errors     int `json:"failed"`
	LeftOut    int `json:"left_out"` // probes left out
}

// Host is a host probed from.
type Host struct {
	Host string `json:"host"`
	Role string `json:"role"`
	// Status is "probed", "failed" (every probe failed) or NotTried.
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"` // the first probe's that failed
	Probes     int    `json:"probes"`
	Mismatches int    `json:"mismatches"`
	Failed     int    `json:"failed"`
}

// LeftOut is a host whose probes a check left out, and why: its status in
// the run, or ExcludedStatus.
type LeftOut struct {
	Host   string `json:"host"`
	Status string `json:"status"`
}

// Probe is one probe, what it had to find and what it found.
type Probe struct {
	Cell     string      `json:"cell"` // "app -> db:3306"
	From     string      `json:"from"`
	FromRole string      `json:"from_role"`
	To       string      `json:"to"`
	ToRole   string      `json:"to_role"`
	Addr     string      `json:"addr"`
	Port     int         `json:"port"`
	Proto    string      `json:"proto"`
	Expected roles.Reach `json:"expected"`
	Observed roles.Reach `json:"observed,omitempty"` // "" when the probe failed
	Detail   string      `json:"detail,omitempty"`
	Error    string      `json:"error,omitempty"`
	Why      string      `json:"why"`
	// DecidedBy, for a mismatch, is the rule of the compiled policies
	// that decides what the probe had to find, and the inventory entry
	// behind it, as fwpush explain says it (see Report.Explain).
	DecidedBy string `json:"decided_by,omitempty"`
	OK        bool   `json:"ok"`
}

// Cell is a cell of the matrix: every probe from one role to one role and
// port.
type Cell struct {
	From       string `json:"from"` // source role, or "controller"
	To         string `json:"to"`   // "db:3306", "lb public:443"
	Expected   string `json:"expected"`
	Mark       string `json:"mark"` // ✓ all as expected, ✗ a mismatch, ! a probe failed
	Probes     int    `json:"probes"`
	Mismatches int    `json:"mismatches"`
	Errors     int    `json:"failed"`

	// Key is the cell as the matrix has it (not in JSON).
	Key roles.Cell `json:"-"`
}

// The marks of a cell.
const (
	MarkOK       = "✓"
	MarkMismatch = "✗"
	MarkFailed   = "!"
)

// CellName names a cell the way reports do: "app -> db:3306".
func CellName(c roles.Cell) string { return c.From + " -> " + c.Dest() }

// Report reads the verdicts of the suite's probes, one per expectation in
// order, that took as long as took.
func (s Suite) Report(verdicts []Verdict, took time.Duration) *Report {
	m := s.Matrix
	rep := &Report{Notes: m.Notes, Seconds: took.Seconds(), Hosts: []Host{}, Probes: []Probe{}, Cells: []Cell{}}
	if rep.Notes == nil {
		rep.Notes = []string{}
	}
	byHost := map[string]*Host{}
	var hostOrder []string
	cells := map[roles.Cell]*Cell{}
	var order []roles.Cell
	for i, e := range m.Expectations {
		v := verdicts[i]
		p := Probe{
			Cell: CellName(e.Cell()), From: e.From, FromRole: e.FromRole, To: e.To, ToRole: e.ToRole,
			Addr: e.Addr.String(), Port: e.Port, Proto: e.Proto, Expected: e.Want,
			Observed: v.Reach, Detail: v.Detail, Why: e.Why, OK: v.Err == nil && v.Reach == e.Want,
		}
		if v.Err != nil {
			p.Error = v.Err.Error()
		}
		rep.Probes = append(rep.Probes, p)
		if e.From != roles.Controller {
			h := byHost[e.From]
			if h == nil {
				h = &Host{Host: e.From, Role: e.FromRole}
				byHost[e.From] = h
				hostOrder = append(hostOrder, e.From)
			}
			h.Probes++
			switch {
			case v.Err != nil:
				h.Failed++
				if h.Error == "" {
					h.Error = v.Err.Error()
				}
				if v.NotTried {
					h.Status = NotTried
				}
			case !p.OK:
				h.Mismatches++
			}
		}
		key := e.Cell()
		c, ok := cells[key]
		if !ok {
			c = &Cell{From: key.From, To: key.Dest(), Expected: string(e.Want), Key: key}
			cells[key] = c
			order = append(order, key)
		}
		if c.Expected != string(e.Want) {
			c.Expected = "mixed"
		}
		c.Probes++
		switch {
		case p.Error != "":
			c.Errors++
			rep.Count.Errors++
		case !p.OK:
			c.Mismatches++
			rep.Count.Mismatches++
		default:
			rep.Count.Expected++
		}
	}
	for _, k := range order {
		c := cells[k]
		c.Mark = MarkOK
		if c.Errors > 0 {
			c.Mark = MarkFailed
		}
		if c.Mismatches > 0 {
			c.Mark = MarkMismatch
		}
		rep.Cells = append(rep.Cells, *c)
	}
	slices.Sort(hostOrder)
	for _, name := range hostOrder {
		h := byHost[name]
		switch {
		case h.Status != "": // not tried
		case h.Failed == h.Probes:
			h.Status = "failed"
		default:
			h.Status = "probed"
		}
		rep.Hosts = append(rep.Hosts, *h)
	}
	rep.Count.Probes, rep.Count.Hosts = len(rep.Probes), len(hostOrder)
	if s.Left > 0 {
		rep.Count.LeftOut = s.Left
		for _, h := range slices.Sorted(maps.Keys(s.LeftOut)) {
			rep.LeftOut = append(rep.LeftOut, LeftOut{Host: h, Status: s.LeftOut[h]})
		}
	}
	return rep
}

// Explain sets the DecidedBy of every mismatch, probe i being the
// suite's expectation i, as why says it.
func (r *Report) Explain(s Suite, why func(roles.Expectation) string) {
	for i := range r.Probes {
		if p := &r.Probes[i]; p.Error == "" && !p.OK && i < len(s.Matrix.Expectations) {
			p.DecidedBy = why(s.Matrix.Expectations[i])
		}
	}
}

// OK reports whether every probe found what it had to: no mismatch, and
// no probe that could not be made.
func (r *Report) OK() bool { return r.Count.Mismatches+r.Count.Errors == 0 }
