package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/runner"
)

// TestPersistedColumn: the summary's "persisted" column and --json's
// "boot" say what each host loads if it reboots now; a host that failed
// shows whether its earlier rules are still in place, not a bare "no".
func TestPersistedColumn(t *testing.T) {
	results := []runner.HostResult{
		{Host: "haproxy-www", Role: "lb", Status: runner.Applied, Persisted: true, Boot: runner.BootPolicy},
		{Host: "mysql-1", Role: "db", Status: runner.Failed, Boot: runner.BootEarlier},
		{Host: "mysql-2", Role: "db", Status: runner.RolledBack, Boot: runner.BootNone},
		{Host: "tunnel-1", Role: "tunnel", Status: runner.Unreachable},
	}
	var out bytes.Buffer
	newReporter(&out, runFlags{}).finish(results, time.Second)
	cells := map[string]string{}
	row := regexp.MustCompile(`(?m)^\s*(\S+)\s+\S+\s+(?:\S+ )?\S+\s+\d+\s+\d+\s+(\S+)\s+\S+\s*$`)
	for _, m := range row.FindAllStringSubmatch(out.String(), -1) {
		cells[m[1]] = m[2]
	}
	want := map[string]string{"haproxy-www": "yes", "mysql-1": "earlier", "mysql-2": "none", "tunnel-1": "?"}
	for host, cell := range want {
		if cells[host] != cell {
			t.Errorf("%s: persisted %q, want %q:\n%s", host, cells[host], cell, out.String())
		}
	}

	out.Reset()
	if err := newReporter(&out, runFlags{asJSON: true}).writeJSON("site.toml", results, time.Second, nil, nil, exitFailed); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "run", out.Bytes())
	var rep runReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	var boots []string
	for _, h := range rep.Hosts {
		boots = append(boots, h.Host+"="+h.Boot)
	}
	if got := strings.Join(boots, " "); got != "haproxy-www=policy mysql-1=earlier mysql-2=none tunnel-1=unknown" {
		t.Errorf("--json boot: %s", got)
	}
}
