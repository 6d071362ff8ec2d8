package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// promtool is Prometheus' own linter, when this machine has it (Debian's
// prometheus package): it holds the names to the conventions (base units,
// _total only on counters) and checks the alert rules docs/metrics.md
// shows.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: prometheus); the names are held by TestRunMetrics alone")
	}
	return p
}

func TestPromtoolLintsTheFile(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	run := Run{Inventory: sites(t), Start: time.Unix(1767225600, 0), Duration: time.Second, Results: results(), Check: &Probes{AsExpected: 3}}
	check := Check{Inventory: sites(t), Start: time.Unix(1767225600, 0), Hosts: []HostProbes{{Host: "db-1", Role: "db", AsExpected: 2}}}
	for name, write := range map[string]func(string) error{"run.prom": run.Write, "check.prom": check.Write} {
		path := filepath.Join(dir, name)
		if err := write(path); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics %s: %v\n%s", name, err, out)
		}
	}
}

func TestPromtoolChecksTheDocsRules(t *testing.T) {
	tool := promtool(t)
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n```yaml\n")
	rules, _, closed := strings.Cut(rest, "\n```\n")
	if !ok || !closed || !strings.Contains(rules, "fwpush_last_success_timestamp_seconds") {
		t.Fatal("docs/metrics.md has no yaml block of alert rules on fwpush_last_success_timestamp_seconds")
	}
	path := filepath.Join(t.TempDir(), "fwpush.rules.yml")
	if err := os.WriteFile(path, []byte(rules+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "check", "rules", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 4 rules found") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
