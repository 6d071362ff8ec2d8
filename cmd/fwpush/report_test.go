package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/fwpush/fwpush/runner"
)

const testDiff = "--- mysql-1 live IPv4\n+++ mysql-1 desired IPv4\n@@ -3,2 +3,3 @@\n :OUTPUT ACCEPT\n+-A INPUT -s 198.18.0.21/32 -j ACCEPT\n--A INPUT -s 198.51.100.7/32 -j ACCEPT\n"

// TestReportDiffs: which text reports carry the diffs of changed hosts.
func TestReportDiffs(t *testing.T) {
	results := []runner.HostResult{
		{Host: "mysql-1", Role: "db", Status: runner.DriftRepaired, Added: 1, Removed: 1, Diff: testDiff, Duration: time.Second},
		{Host: "mysql-2", Role: "db", Status: runner.Unchanged},
	}
	tests := []struct {
		name string
		f    runFlags
		want bool
	}{
		{"plain run", runFlags{}, false},
		{"--diff", runFlags{diff: true}, true},
		{"--quiet, something changed", runFlags{quiet: true}, true},
		{"--quiet --no-diff", runFlags{quiet: true, noDiff: true}, false},
		{"--diff --no-diff", runFlags{diff: true, noDiff: true}, false},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		newReporter(&out, tt.f).finish(results, time.Second)
		got := strings.Contains(out.String(), "--- mysql-1 (db): drift repaired\n"+testDiff)
		if got != tt.want {
			t.Errorf("%s: diff shown %v, want %v:\n%s", tt.name, got, tt.want, out.String())
		}
		if strings.Contains(out.String(), "mysql-2 (db)") {
			t.Errorf("%s: a diff for an unchanged host", tt.name)
		}
	}
}

func TestPaintDiff(t *testing.T) {
	text.EnableColors()
	if got := paintDiff(style{tty: true}, testDiff); got != testDiff {
		t.Errorf("without colour the diff changed: %q", got)
	}
	got := paintDiff(style{tty: true, color: true}, testDiff)
	for _, want := range []string{
		text.FgGreen.Sprint("+-A INPUT -s 198.18.0.21/32 -j ACCEPT") + "\n",
		text.FgRed.Sprint("--A INPUT -s 198.51.100.7/32 -j ACCEPT") + "\n",
		text.FgCyan.Sprint("@@ -3,2 +3,3 @@") + "\n",
		" :OUTPUT ACCEPT\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("coloured diff lacks %q:\n%q", want, got)
		}
	}
}
