package check

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

func loadSite(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// siteReport is the report of the example's whole matrix as if every
// probe had found what it expects, but what alter changes.
func siteReport(t *testing.T, alter func(e roles.Expectation) (Verdict, bool)) *Report {
	t.Helper()
	s := Suite{Matrix: roles.Expect(loadSite(t))}
	verdicts := make([]Verdict, len(s.Matrix.Expectations))
	for i, e := range s.Matrix.Expectations {
		verdicts[i] = Verdict{Reach: e.Want, Detail: map[roles.Reach]string{roles.Reachable: "refused", roles.Filtered: "timed out"}[e.Want]}
		if alter != nil {
			if v, ok := alter(e); ok {
				verdicts[i] = v
			}
		}
	}
	return s.Report(verdicts, 1234*time.Millisecond)
}

func TestReportAllAsExpected(t *testing.T) {
	rep := siteReport(t, nil)
	want := Counts{Probes: 71, Hosts: 6, Expected: 71}
	if diff := cmp.Diff(want, rep.Count); diff != "" || !rep.OK() {
		t.Errorf("counts (-want +got):\n%s; OK %v", diff, rep.OK())
	}
	if len(rep.Hosts) != 6 || len(rep.Notes) == 0 || rep.Seconds != 1.234 || rep.LeftOut != nil {
		t.Errorf("%d hosts, notes %v, %vs, left out %v", len(rep.Hosts), rep.Notes, rep.Seconds, rep.LeftOut)
	}
	for _, h := range rep.Hosts {
		if h.Status != "probed" || h.Probes == 0 || h.Failed+h.Mismatches != 0 {
			t.Errorf("host %+v", h)
		}
	}
	for _, c := range rep.Cells {
		if c.Mark != MarkOK || c.Probes == 0 || CellName(c.Key) != c.From+" -> "+c.To {
			t.Errorf("cell %+v", c)
		}
	}
}

func TestReportMismatches(t *testing.T) {
	down := errors.New("probe from mysql-2: host mysql-2: connect to 198.18.0.32:22 through tunnel tunnel-1: i/o timeout")
	rep := siteReport(t, func(e roles.Expectation) (Verdict, bool) {
		switch {
		case e.From == "wordpress-1" && e.To == "mysql-1" && e.Port == 22: // a rule added by hand
			return Verdict{Reach: roles.Reachable, Detail: "connected"}, true
		case e.From == "haproxy-www" && e.To == "wordpress-2" && e.Port == 80: // a rule removed by hand
			return Verdict{Reach: roles.Filtered, Detail: "timed out"}, true
		case e.From == "mysql-2":
			return Verdict{Err: down}, true
		}
		return Verdict{}, false
	})
	if rep.OK() || rep.Count.Mismatches != 2 || rep.Count.Errors == 0 || rep.Count.Expected+rep.Count.Mismatches+rep.Count.Errors != rep.Count.Probes {
		t.Fatalf("OK %v, counts %+v", rep.OK(), rep.Count)
	}
	cells := map[string]string{}
	for _, c := range rep.Cells {
		cells[c.From+" -> "+c.To] = c.Mark
	}
	for cell, mark := range map[string]string{"app -> db:22": MarkMismatch, "lb -> app:80": MarkMismatch, "db -> db:3306": MarkFailed, "app -> db:3306": MarkOK, "controller -> lb public:80": MarkOK} {
		if cells[cell] != mark {
			t.Errorf("cell %s: mark %q, want %q", cell, cells[cell], mark)
		}
	}
	var found bool
	for _, p := range rep.Probes {
		if p.Cell == "app -> db:22" && p.From == "wordpress-1" && p.To == "mysql-1" {
			found = true
			want := Probe{Cell: "app -> db:22", From: "wordpress-1", FromRole: "app", To: "mysql-1", ToRole: "db", Addr: "198.18.0.31", Port: 22, Proto: "tcp",
				Expected: roles.Filtered, Observed: roles.Reachable, Detail: "connected", Why: p.Why, OK: false}
			if diff := cmp.Diff(want, p); diff != "" || p.Why == "" {
				t.Errorf("the mismatched probe (-want +got):\n%s", diff)
			}
		}
	}
	if !found {
		t.Error("no probe for the mismatch")
	}
	for _, h := range rep.Hosts {
		if h.Host == "mysql-2" && (h.Status != "failed" || h.Error != down.Error() || h.Failed != h.Probes) {
			t.Errorf("mysql-2, whose probes all failed: %+v", h)
		}
		if h.Host == "wordpress-1" && (h.Status != "probed" || h.Mismatches != 1) {
			t.Errorf("wordpress-1, with one mismatch: %+v", h)
		}
	}
}

// A host fwpush did not try is reported so, not as failed.
func TestReportNotTried(t *testing.T) {
	rep := siteReport(t, func(e roles.Expectation) (Verdict, bool) {
		return Verdict{Err: errors.New("not tried: site: no bastion answers"), NotTried: true}, e.From == "mysql-1"
	})
	for _, h := range rep.Hosts {
		if want := map[bool]string{true: NotTried, false: "probed"}[h.Host == "mysql-1"]; h.Status != want {
			t.Errorf("%s: status %q, want %q", h.Host, h.Status, want)
		}
	}
}

// The hosts left out (a run did not finish them, --limit excludes them)
// are neither probed from nor to, and the report says which and why.
func TestSuiteLeavesOut(t *testing.T) {
	inv := loadSite(t)
	all := NewSuite(inv, inv.Hosts, nil)
	out := map[string]string{"mysql-2": "unreachable", "wordpress-1": ExcludedStatus}
	s := NewSuite(inv, inv.Hosts, out)
	if s.Left == 0 || len(s.Matrix.Expectations)+s.Left != len(all.Matrix.Expectations) {
		t.Fatalf("left %d of %d, kept %d", s.Left, len(all.Matrix.Expectations), len(s.Matrix.Expectations))
	}
	for _, e := range s.Matrix.Expectations {
		if _, ok := out[e.From]; ok {
			t.Errorf("probe from %s, which is left out", e.From)
		}
		if _, ok := out[e.To]; ok {
			t.Errorf("probe to %s, which is left out", e.To)
		}
	}
	verdicts := make([]Verdict, len(s.Matrix.Expectations))
	for i, e := range s.Matrix.Expectations {
		verdicts[i] = Verdict{Reach: e.Want}
	}
	rep := s.Report(verdicts, time.Second)
	want := []LeftOut{{Host: "mysql-2", Status: "unreachable"}, {Host: "wordpress-1", Status: ExcludedStatus}}
	if diff := cmp.Diff(want, rep.LeftOut); diff != "" || rep.Count.LeftOut != s.Left || !rep.OK() {
		t.Errorf("left out (-want +got):\n%s; counted %d of %d; OK %v", diff, rep.Count.LeftOut, s.Left, rep.OK())
	}
}

func TestExcluded(t *testing.T) {
	inv := loadSite(t)
	got := Excluded(inv, "db,!mysql-2,!haproxy-*")
	if want := []string{"haproxy-www", "mysql-2"}; !slices.Equal(slices.Sorted(maps.Keys(got)), want) || got["mysql-2"] != ExcludedStatus {
		t.Errorf("Excluded = %v, want %v, each %q", got, want, ExcludedStatus)
	}
	if got := Excluded(inv, "db"); len(got) != 0 {
		t.Errorf("Excluded without '!' = %v", got)
	}
}
