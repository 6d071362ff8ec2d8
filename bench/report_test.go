package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUpdate(t *testing.T) {
	const section = "## Results\nnew\n"
	block := BeginMarker + "\n" + section + EndMarker + "\n"
	for _, tc := range []struct {
		name, old, want, err string
	}{
		{"keeps the text around the markers",
			"# Benchmarks\n\nnotes\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## Targets\nlead's text\n",
			"# Benchmarks\n\nnotes\n\n" + block + "\n## Targets\nlead's text\n", ""},
		{"adds the markers at the end", "# Benchmarks\n\nnotes\n\n\n", "# Benchmarks\n\nnotes\n\n" + block, ""},
		{"refuses broken markers", "x\n" + EndMarker + "\n" + BeginMarker + "\n", "", "markers"},
		{"refuses a lone marker", "x\n" + BeginMarker + "\n", "", "markers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
				t.Fatal(err)
			}
			err := update(path, section)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("update: %v, want error %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			// Idempotent: a second run changes only the section.
			if err := update(path, section); err != nil {
				t.Fatal(err)
			}
			again, _ := os.ReadFile(path)
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("second update (-first +second):\n%s", diff)
			}
		})
	}
	t.Run("creates the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
		if err := update(path, section); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(got), "# Benchmarks\n") || !strings.HasSuffix(string(got), block) {
			t.Errorf("new file:\n%s", got)
		}
	})
}

func TestStat(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Stat
	}{
		{[]float64{3}, Stat{3, 3, 3}},
		{[]float64{5, 1, 3}, Stat{3, 1, 5}},
		{[]float64{4, 1, 3, 10}, Stat{3.5, 1, 10}},
		{nil, Stat{}},
	} {
		if got := stat(tc.in); got != tc.want {
			t.Errorf("stat(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseTools(t *testing.T) {
	got, err := ParseTools("fwpush, openssh,fwpush")
	if err != nil || !cmp.Equal(got, []Tool{FwPush, OpenSSH}) {
		t.Errorf("ParseTools = %v, %v", got, err)
	}
	if _, err := ParseTools("fwpush,salt"); err == nil || !strings.Contains(err.Error(), `"salt"`) {
		t.Errorf("ParseTools(salt): %v", err)
	}
}

// TestMarkdown checks the tables, ratios and round trips from made-up
// samples.
func TestMarkdown(t *testing.T) {
	const rtt = 60 * time.Millisecond
	r := &Results{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Runs: 3, RTTRuns: 2, Sizes: []int{6, 50},
		RTTs: []time.Duration{0, rtt}, Parallel: 20}
	add := func(s Scenario, n int, rtt time.Duration, walls ...float64) {
		for i, w := range walls {
			x := Sample{Wall: time.Duration(w * float64(time.Second)), CPU: time.Second / 10, MaxRSS: 20 << 20}
			if rtt > 0 {
				x.TunnelConns, x.TunnelTurns = 1, int64(40+i)
			}
			r.add(s, n, rtt, x)
		}
	}
	add(FirstPush, 6, 0, 1.0, 1.2, 1.1)
	add(FirstPush, 50, 0, 2.0, 2.5, 2.2)
	add(Rerun, 6, 0, 0.3, 0.3, 0.3)
	add(AnsibleRun, 6, 0, 9, 10, 11)
	add(MitogenRun, 6, 0, 5.5, 5, 6)
	add(Floor, 6, 0, 0.6, 0.5, 0.7)
	add(FloorDefault, 6, 0, 1.2, 1.1, 1.3)
	add(FirstPush, 6, rtt, 2.9, 3.1)
	add(Rerun, 6, rtt, 1.2, 1.2)
	add(MitogenRun, 6, rtt, 9, 9)
	add(Floor, 6, rtt, 1.5, 1.5)
	md := Markdown(r, "docs/bench.svg")
	for _, want := range []string{
		"### Wall time, seconds, RTT 0\n\n| | 6 hosts | 50 hosts |\n|---|---|---|\n",
		"| fwpush first push (every host changes) | 1.10 (1.00–1.20) | 2.20 (2.00–2.50) |\n",
		"| fwpush unchanged re-run (the cron case) | 0.300 (0.300–0.300) | – |\n",
		"| Ansible + Mitogen (`mitogen_linear`): first push | 5.50 (5.00–6.00) | – |\n",
		"| first push: the better Ansible strategy takes fwpush's time × | 5.0× (Mitogen, 5.50 s) | – |\n",
		"| unchanged re-run: fwpush's time ÷ the OpenSSH floor's | 0.50 | – |\n",
		"| unchanged re-run: fwpush's time ÷ the floor's with OpenSSH's default key exchange | 0.25 | – |\n",
		"| fwpush first push (every host changes) | 0.100 s, 20.0 MiB | 0.100 s, 20.0 MiB |\n",
		"![Wall time against fleet size, per tool](docs/bench.svg)",
		"of 6 and 50 hosts; RTT 0: 6 and 50 hosts, 3 runs of each; RTT 60 ms: 6 hosts, 2 runs of each.",
		// Only the size measured at 60 ms, with its own medians and ratios.
		"### Wall time, seconds, RTT 60 ms\n\n| | 6 hosts |\n|---|---|\n| fwpush first push (every host changes) | 3.00 (2.90–3.10) |\n",
		"### Ratios (medians), RTT 60 ms\n\n| | 6 hosts |\n|---|---|\n| first push: the better Ansible strategy takes fwpush's time × | 3.0× (Mitogen, 9.00 s) |\n" +
			"| unchanged re-run: fwpush's time ÷ the OpenSSH floor's | 0.80 |\n",
		// (3.0 − 1.1) s ÷ 60 ms; the turns' median of 40 and 41.
		"### Round trips, RTT 60 ms\n\n| | 6 hosts |\n|---|---|\n| fwpush first push (every host changes) | 31.7 (40 turns / 1 conn) |\n" +
			"| fwpush unchanged re-run (the cron case) | 15.0 (40 turns / 1 conn) |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "--dry-run` (every") {
		t.Errorf("markdown has a row for a scenario never measured:\n%s", md)
	}
	if strings.Contains(md, "Round trips, RTT 0") || strings.Count(md, "### CPU time") != 1 {
		t.Errorf("markdown has round trips at RTT 0, or CPU tables at every RTT:\n%s", md)
	}
}

// TestMarkdownBeforeRTTs: the JSON of a bench that knew only RTT 0 (no
// rtts_ns, no rtt_ns) is reported as measured at RTT 0.
func TestMarkdownBeforeRTTs(t *testing.T) {
	var r Results
	data := `{"runs": 3, "sizes": [6], "measurements": [{"scenario": "fwpush-first-push", "hosts": 6,
		"samples": [{"wall_ns": 1000000000}], "wall_seconds": {"median": 1, "min": 1, "max": 1}}]}`
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		t.Fatal(err)
	}
	md := Markdown(&r, "")
	if !strings.Contains(md, "### Wall time, seconds, RTT 0\n\n| | 6 hosts |\n|---|---|\n| fwpush first push (every host changes) | 1.00 (1.00–1.00) |\n") {
		t.Errorf("markdown:\n%s", md)
	}
}

// TestScaleTargets: the targets of issue 18 are judged from the numbers,
// met or missed, at the sizes that tell them.
func TestScaleTargets(t *testing.T) {
	sample := func(wall float64, rss int64) []Sample {
		return []Sample{{Wall: time.Duration(wall * float64(time.Second)), CPU: time.Second, MaxRSS: rss}}
	}
	for _, tc := range []struct {
		name  string
		scale []*Scale
		want  []string
	}{
		{"met", []*Scale{
			{Hosts: 50, AppRules: 9, AppRulesDigest: "a", Validate: sample(0.5, 20<<20), DB: Added{MembersAdded: 1}},
			{Hosts: 5000, AppRules: 9, AppRulesDigest: "a", Validate: sample(1, 50<<20), DB: Added{MembersAdded: 1}},
			{Hosts: 10000, AppRules: 9, AppRulesDigest: "a", Validate: sample(2.9, 80<<20), DB: Added{MembersAdded: 1}},
		}, []string{
			"| `fwpush validate` of 10000 hosts ≤ 3 s, ≤ 512 MiB RSS | 2.90 s (2.90–2.90), 80 MiB; CPU 1.00 s, at a load average of 0.0 to 0.0 | met |",
			"| rules in an app server's IPv4 filter table, 50 vs 5000 hosts: identical | 9 and 9, identical | met |",
			"| an app server added: what changes on a db server is set members only | one member added, no rule, no set at every size | met |",
		}},
		{"missed", []*Scale{
			{Hosts: 50, AppRules: 9, AppRulesDigest: "a", DB: Added{MembersAdded: 1}},
			{Hosts: 5000, AppRules: 9, AppRulesDigest: "b", DB: Added{MembersAdded: 1, RulesAdded: 1}},
			{Hosts: 10000, Validate: sample(3.5, 80<<20), DB: Added{MembersAdded: 1}},
		}, []string{
			"| `fwpush validate` of 10000 hosts ≤ 3 s, ≤ 512 MiB RSS | 3.50 s (3.50–3.50), 80 MiB; CPU 1.00 s, at a load average of 0.0 to 0.0 | missed |",
			"| rules in an app server's IPv4 filter table, 50 vs 5000 hosts: identical | 9 and 9, different | missed |",
			"| an app server added: what changes on a db server is set members only | see above at every size | missed |",
		}},
	} {
		r := &Results{Scale: tc.scale, ScaleRuns: 1}
		md := ScaleMarkdown(r)
		for _, w := range tc.want {
			if !strings.Contains(md, w+"\n") {
				t.Errorf("%s: no %q in:\n%s", tc.name, w, md)
			}
		}
	}
}
