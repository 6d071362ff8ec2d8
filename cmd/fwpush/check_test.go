package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// siteReport builds check's document for the example as if every probe
// had found what it expects, then lets change alter some observations.
func siteReport(t *testing.T, change func(e roles.Expectation) (runner.Observation, bool)) *checkReport {
	t.Helper()
	inv, err := inventory.Load("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := roles.Expect(inv)
	obs := make([]runner.Observation, len(m.Expectations))
	for i, e := range m.Expectations {
		obs[i] = runner.Observation{Reach: e.Want, Detail: map[roles.Reach]string{roles.Reachable: "refused", roles.Filtered: "timed out"}[e.Want]}
		if change != nil {
			if o, ok := change(e); ok {
				obs[i] = o
			}
		}
	}
	return newCheckReport(inv, m, obs, 1234*time.Millisecond)
}

func TestCheckReportAllAsExpected(t *testing.T) {
	rep := siteReport(t, nil)
	if rep.exit() != exitOK || rep.ExitCode != exitOK {
		t.Fatalf("exit %d, exit_code %d, counts %+v", rep.exit(), rep.ExitCode, rep.Count)
	}
	var out bytes.Buffer
	rep.writeText(&out, style{}, true)
	for _, want := range []string{
		`to \ from`,
		"controller",
		"db:3306",
		"lb public:80",
		"lb public6:443",
		"open ✓",
		"shut ✓",
		"roles.app.allow from 198.51.100.0/24, tcp 9100: not probed",
		"check: 71 probes from 6 hosts and the controller in 1.234s: all as expected\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "open ✗") || strings.Contains(out.String(), "shut ✗") || strings.Contains(out.String(), "\x1b[") {
		t.Errorf("plain output with a mismatch mark or colours:\n%s", out.String())
	}
}

func TestCheckReportMismatches(t *testing.T) {
	down := errors.New("probe from mysql-2: host mysql-2: connect to 198.18.0.32:22 through tunnel tunnel-1: i/o timeout")
	rep := siteReport(t, func(e roles.Expectation) (runner.Observation, bool) {
		switch {
		case e.From == "wordpress-1" && e.To == "mysql-1" && e.Port == 22: // a rule added by hand
			return runner.Observation{Reach: roles.Reachable, Detail: "connected"}, true
		case e.From == "haproxy-www" && e.To == "wordpress-2" && e.Port == 80: // a rule removed by hand
			return runner.Observation{Reach: roles.Filtered, Detail: "timed out"}, true
		case e.From == "mysql-2":
			return runner.Observation{Err: down}, true
		}
		return runner.Observation{}, false
	})
	if rep.exit() != exitFailed || rep.ExitCode != exitFailed {
		t.Fatalf("exit %d, exit_code %d, counts %+v", rep.exit(), rep.ExitCode, rep.Count)
	}
	var out bytes.Buffer
	rep.writeText(&out, style{}, true)
	text := out.String()
	for _, want := range []string{
		"2 mismatches:\n",
		"  ✗ app -> db:22: wordpress-1 -> mysql-1 (198.18.0.31:22): expected filtered, observed reachable (connected); roles.db.allow opens nothing on tcp 22 to app; SSH is open to the tunnel only\n",
		"  ✗ lb -> app:80: haproxy-www -> wordpress-2 (198.18.0.22:80): expected reachable, observed filtered (timed out); roles.app.allow: from lb, tcp 80\n",
		"could not be made:\n  ! " + down.Error() + " (",
		"shut ✗",
		"open ✗",
		"open !",
		"2 mismatches, ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// --json: the same data. (What the report holds is package check's
	// tests.)
	var js bytes.Buffer
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "check", js.Bytes())
	var doc struct {
		Probes []map[string]any `json:"probes"`
		Cells  []map[string]any `json:"cells"`
		Notes  []string         `json:"notes"`
		Count  map[string]int   `json:"counts"`
		Exit   int              `json:"exit_code"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Exit != exitFailed || doc.Count["mismatches"] != 2 || doc.Count["probes"] != 71 || len(doc.Probes) != 71 || len(doc.Cells) != len(rep.Cells) || len(doc.Notes) == 0 {
		t.Errorf("JSON report: exit %d, count %v, %d probes, %d cells, notes %v", doc.Exit, doc.Count, len(doc.Probes), len(doc.Cells), doc.Notes)
	}
	var found bool
	for _, p := range doc.Probes {
		if p["cell"] == "app -> db:22" && p["from"] == "wordpress-1" && p["to"] == "mysql-1" {
			found = true
			if p["expected"] != "filtered" || p["observed"] != "reachable" || p["ok"] != false || p["addr"] != "198.18.0.31" {
				t.Errorf("JSON probe %v", p)
			}
		}
	}
	if !found {
		t.Error("JSON report lacks the mismatched probe")
	}
}

func TestCheckReportAfterRunIsShort(t *testing.T) {
	rep := siteReport(t, nil)
	var out bytes.Buffer
	rep.writeText(&out, style{}, false)
	if got := out.String(); got != "check: 71 probes from 6 hosts and the controller in 1.234s: all as expected\n" {
		t.Errorf("after a run, all good prints one line; got:\n%s", got)
	}
}

func TestCheckInvalidInventory(t *testing.T) {
	bad := t.TempDir() + "/bad.toml"
	if err := os.WriteFile(bad, []byte("[ssh]\ntunnel = \"nope\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := fwpush(t, "check", bad)
	if code != exitInvalid || out != "" || !strings.Contains(errs, "tunnel") {
		t.Errorf("check of an invalid inventory: exit %d, stdout %q, stderr %q; want 3, nothing, the problem", code, out, errs)
	}
}

// noFleet is a fleet that must not be used.
type noFleet struct{ t *testing.T }

func (f noFleet) Open(_ context.Context, h *inventory.Host) (runner.Host, error) {
	f.t.Errorf("host %s opened: nothing should have been dialled", h.Name)
	return nil, errors.New("no fleet")
}

func (f noFleet) OpenFresh(ctx context.Context, h *inventory.Host) (runner.Host, error) {
	return f.Open(ctx, h)
}

func (f noFleet) Tunnel(_ context.Context, site string) string {
	f.t.Errorf("site %q reached: nothing should have been dialled", site)
	return ""
}

// TestVerifyAfterRunOnlyAfterAChange: the check after a run proves what the
// run changed. When the run changed no rules (every host unchanged, or
// none reached: its report says why), probing would only wait for the same
// timeouts again, so nothing is dialled and nothing printed.
func TestVerifyAfterRunOnlyAfterAChange(t *testing.T) {
	inv, err := inventory.Load("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, results := range map[string][]runner.HostResult{
		"unreachable": {{Host: "tunnel-1", Status: runner.Unreachable}, {Host: "mysql-1", Status: runner.Unreachable}},
		"unchanged":   {{Host: "tunnel-1", Status: runner.Unchanged}, {Host: "mysql-1", Status: runner.Unchanged}},
		"failed":      {{Host: "tunnel-1", Status: runner.Unchanged}, {Host: "mysql-1", Status: runner.Failed}},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if rep := verifyAfterRun(t.Context(), plan, results, noFleet{t}, nil, &out, runFlags{}); rep != nil || out.Len() != 0 {
				t.Errorf("got %+v, stdout %q; want nothing at all", rep, out.String())
			}
		})
	}
}
