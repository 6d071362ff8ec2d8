package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/bench"
	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestMain says, under go test -short, how many tests were left out.
func TestMain(m *testing.M) { testenv.Main(m) }

// TestSmoke runs the bench as make bench does, reduced to one lab of 6
// hosts, one run and fwpush only, and checks that it measured every
// fwpush scenario and wrote the numbers where they belong. It proves the
// bench works, not how fast anything is.
func TestSmoke(t *testing.T) {
	labtest.Require(t)
	dir := t.TempDir()
	fw, launcher := filepath.Join(dir, "fwpush"), filepath.Join(dir, "fwbench-launch")
	for bin, pkg := range map[string]string{fw: "../../../cmd/fwpush", launcher: "../fwbench-launch"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	md := filepath.Join(dir, "BENCHMARKS.md")
	const head = "# Benchmarks\n\nThe lead's notes, kept.\n\n"
	const foot = "\n## Targets\n\nkept too\n"
	stale := head + bench.BeginMarker + "\nstale numbers\n" + bench.EndMarker + "\n" + foot
	if err := os.WriteFile(md, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-sizes", "6", "-runs", "1", "-tools", "fwpush", "-fwpush", fw, "-launcher", launcher,
		"-out", md, "-plot", "", "-json", js, "-install=false"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("fwbench: %v\nstderr:\n%s", err, stderr.String())
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err != nil || strings.Contains(string(out), fmt.Sprintf("fwp-fwb%x-", os.Getpid())) {
		t.Errorf("the bench left its lab up (%v):\n%s", err, out)
	}

	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("bench.json: %v", err)
	}
	scenarios := []bench.Scenario{bench.FirstPush, bench.Rerun, bench.DryRun, bench.Check}
	for _, s := range scenarios {
		m := res.Get(s, 6)
		if m == nil || len(m.Samples) != 1 {
			t.Errorf("%s: want one sample at 6 hosts, got %+v", s, m)
			continue
		}
		x := m.Samples[0]
		// The launcher's peak bounds what the bench or nsenter could have
		// left in fwpush's rusage; fwpush, a Go program, needs more.
		if x.Wall <= 0 || x.CPU <= 0 || x.LauncherRSS <= 0 || x.MaxRSS <= x.LauncherRSS {
			t.Errorf("%s: implausible sample %+v", s, x)
		}
		if m.Wall.Median != x.Wall.Seconds() {
			t.Errorf("%s: median %v of one sample %v", s, m.Wall.Median, x.Wall.Seconds())
		}
	}
	if len(res.Measurements) != len(scenarios) {
		t.Errorf("measured %d scenarios, want %d (fwpush only)", len(res.Measurements), len(scenarios))
	}

	got, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	if !strings.HasPrefix(text, head+bench.BeginMarker+"\n") || !strings.HasSuffix(text, bench.EndMarker+"\n"+foot) || strings.Contains(text, "stale") {
		t.Errorf("BENCHMARKS.md: the text outside the markers changed, or the section was not replaced:\n%s", text)
	}
	// Every fwpush row of the wall-time table holds a median and a range
	// that parse, and the first push's is the one measured.
	row := regexp.MustCompile(`(?m)^\| (fwpush [^|]+) \| ([0-9.]+) \(([0-9.]+)–([0-9.]+)\) \|$`)
	rows := row.FindAllStringSubmatch(text, -1)
	if len(rows) != len(scenarios) {
		t.Fatalf("BENCHMARKS.md: %d fwpush rows of wall time, want %d:\n%s", len(rows), len(scenarios), text)
	}
	for _, r := range rows {
		for _, cell := range r[2:] {
			if v, err := strconv.ParseFloat(cell, 64); err != nil || v <= 0 {
				t.Errorf("BENCHMARKS.md: %s: %q is not a time", r[1], cell)
			}
		}
		if strings.HasPrefix(r[1], "fwpush first push") {
			v, _ := strconv.ParseFloat(r[2], 64)
			if want := res.Get(bench.FirstPush, 6).Wall.Median; v < want*0.99-0.001 || v > want*1.01+0.001 {
				t.Errorf("BENCHMARKS.md: first push %v s, measured %v s", v, want)
			}
		}
	}
	if !strings.Contains(stdout.String(), "### Wall time, seconds") {
		t.Errorf("fwbench printed no tables:\n%s", stdout.String())
	}
}
