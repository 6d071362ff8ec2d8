package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCountProcs counts the processes of strace logs made as the servers
// part makes them (-f -ff, one file per process) from a listener, 1000,
// that accepted two connections: a login whose session ran a shell, which
// ran commands, and a knock (a connection that never logs in).
func TestCountProcs(t *testing.T) {
	dir := filepath.Join("testdata", "strace")
	got, err := countProcs(filepath.Join(dir, "app-1"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	// sshd's own: the two connections' forks (1001, 1010), the login's
	// preauth (1002) and its session's parent (1003), none of which ran a
	// program. The commands': the session's shell (1004, which execs
	// timeout), its sh (1005, after a failed exec), what it started with
	// vfork (1006) and clone3 (1007, no log of its own) and a subshell
	// (1009, no exec, under a command). Neither the thread (1008) nor the
	// failed clone is a process; app-1.txt and app-10's logs are not
	// app-1's.
	want := Procs{Conns: 2, SSHD: 4, Commands: 5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("countProcs (-want +got):\n%s", diff)
	}
	if got.Total() != 9 {
		t.Errorf("Total() = %d, want 9", got.Total())
	}
	if p, err := countProcs(filepath.Join(dir, "app-10"), 2000); err != nil || p != (Procs{Conns: 1, SSHD: 1}) {
		t.Errorf("app-10: %+v, %v; want one connection, one sshd process", p, err)
	}
	if _, err := countProcs(filepath.Join(dir, "app-1"), 999); err == nil || !strings.Contains(err.Error(), "no strace log of sshd") {
		t.Errorf("the listener's log missing: %v, want an error", err)
	}
	if _, err := countProcs(filepath.Join(dir, "db-3"), 1000); err == nil || !strings.Contains(err.Error(), "no strace log") {
		t.Errorf("no logs at all: %v, want an error", err)
	}
}

func TestCgroupMounts(t *testing.T) {
	for _, tc := range []struct {
		name, mounts, v2, v1 string
	}{
		{"hybrid, cpuacct apart (this lab's machine)",
			"tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n" +
				"cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n",
			"/sys/fs/cgroup/unified", "/sys/fs/cgroup/cpuacct"},
		{"v1, cpu and cpuacct together",
			"cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n",
			"", "/sys/fs/cgroup/cpu,cpuacct"},
		{"v2 only", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n", "/sys/fs/cgroup", ""},
		{"none", "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v2, v1 := cgroupMounts([]byte(tc.mounts))
			if v2 != tc.v2 || v1 != tc.v1 {
				t.Errorf("cgroupMounts = %q, %q; want %q, %q", v2, v1, tc.v2, tc.v1)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	if d, err := parseCPUStat([]byte("usage_usec 15572\nuser_usec 5190\nsystem_usec 10381\nnice_usec 0\n")); err != nil || d != 15572*time.Microsecond {
		t.Errorf("cpu.stat: %v, %v; want 15.572ms", d, err)
	}
	if d, err := parseCPUAcct([]byte("22656038\n")); err != nil || d != 22656038 {
		t.Errorf("cpuacct.usage: %v, %v; want 22.656038ms", d, err)
	}
	for _, bad := range []string{"", "user_usec 5\n", "usage_usec many\n", "usage_usec -3\n"} {
		if _, err := parseCPUStat([]byte(bad)); err == nil {
			t.Errorf("cpu.stat %q: no error", bad)
		}
	}
	for _, bad := range []string{"", "lots\n", "-1\n"} {
		if _, err := parseCPUAcct([]byte(bad)); err == nil {
			t.Errorf("cpuacct.usage %q: no error", bad)
		}
	}
}

// serversResults are the results of a servers part of 4 hosts, two runs.
func serversResults(appCommands int) *Results {
	hosts := []ServerHost{{"tunnel-1", "tunnel", true}, {"lb-1", "lb", false}, {"app-1", "app", false}, {"db-3", "db", false}}
	ms := func(v ...float64) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x * float64(time.Millisecond))
		}
		return out
	}
	return &Results{
		Date: time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC), ServerRuns: 2,
		Servers: []*Servers{{
			Size: 4, Runs: 2, Hosts: hosts, CPUSource: "cgroup v2, cpu.stat's usage_usec", Load: [2]float64{3, 5},
			Scenarios: []*ServerScenario{
				{Scenario: FirstPush, Label: label(FirstPush), CPU: [][]time.Duration{ms(100, 40, 40, 40), ms(120, 60, 60, 60)},
					Procs: []Procs{{1, 2, 26}, {2, 3, 33}, {2, 3, 33}, {2, 3, 33}}},
				{Scenario: Rerun, Label: label(Rerun), CPU: [][]time.Duration{ms(20, 10, 10, 10), ms(30, 10, 10, 10)},
					Procs: []Procs{{1, 2, 7}, {1, 2, 5}, {1, 2, appCommands}, {1, 2, 7}}},
			},
		}},
	}
}

func TestServersMarkdown(t *testing.T) {
	got := ServersMarkdown(serversResults(7))
	for _, want := range []string{
		"## Servers' side, per host\n",
		"on 2026-12-06 23:00 UTC", "of 4 hosts, at RTT 0", "from 2 runs of each tool",
		"| | 4 hosts: CPU, ms per host | 4 hosts: processes per host |\n|---|---|---|\n",
		// Per run: (100+3×40)/4 = 55, (120+3×60)/4 = 75; processes (28+3×36)/4.
		"| fwpush first push (every host changes) | 65.0 (55.0–75.0) | 34 |\n",
		"| fwpush unchanged re-run (the cron case) | 13.8 (12.5–15.0) | 8.5 |\n",
		"### The tunnel, and the hosts behind it, 4 hosts\n",
		"| fwpush first push (every host changes) | 110 (100–120) | 28 (2 + 26; 1) | 50.0 (40.0–60.0) | 36 (3 + 33; 2) |\n",
		"| fwpush unchanged re-run (the cron case) | 25.0 (20.0–30.0) | 9 (2 + 7; 1) | 10.0 (10.0–10.0) | 8.3 (2 + 6.3; 1) |\n",
		"the counted run found 9: 2 of sshd for its 1 connection and 7 of fwpush's commands, the same as the 7 that runner/remote's TestSetsForks",
		"load average before the runs went from 3.0 to 5.0",
		"cgroup v2, cpu.stat's usage_usec",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "| Ansible") || strings.Contains(got, "| OpenSSH") {
		t.Errorf("rows of tools not measured:\n%s", got)
	}
	off := ServersMarkdown(serversResults(8))
	if !strings.Contains(off, "from 9: 2 of sshd for its 1 connection and 7 of fwpush's commands, to 10: 2 of sshd for its 1 connection and 8 of fwpush's commands, NOT the same as the 7") {
		t.Errorf("an app server off the budget is not told:\n%s", off)
	}
	// Sizes measured with different runs say so.
	two := serversResults(7)
	more := *two.Servers[0]
	more.Size, more.Runs = 8, 1
	two.Servers = append(two.Servers, &more)
	if got := ServersMarkdown(two); !strings.Contains(got, "from 2 runs at 4 hosts, 1 at 8 of each tool") || !strings.Contains(got, "### The tunnel, and the hosts behind it, 8 hosts") {
		t.Errorf("two sizes of different runs:\n%s", got)
	}
	failed := serversResults(7)
	failed.Servers[0].CountError = "fwpush: fwpush-rerun: exit status 1"
	failed.Servers[0].Scenarios[1].Procs = nil
	if got := ServersMarkdown(failed); !strings.Contains(got, "At 4 hosts the counted run failed, and counted nothing from there on (\"–\"): fwpush: fwpush-rerun: exit status 1.") ||
		!strings.Contains(got, "| fwpush unchanged re-run (the cron case) | 13.8 (12.5–15.0) | – |") || strings.Contains(got, "Cross-check") {
		t.Errorf("a counted run that failed:\n%s", got)
	}
	if p, ok := UnchangedProcs(serversResults(7)); !ok || len(p) != 2 || p[0] != (Procs{1, 2, 7}) {
		t.Errorf("UnchangedProcs = %v, %v; want app-1's and db-3's", p, ok)
	}
}

// TestWriteServers: the servers part rewrites its own section only, and
// its results come back from JSON as they were.
func TestWriteServers(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	around := func(mid string) string {
		return "# Benchmarks\n\n" + BeginMarker + "\nthe labs'\n" + EndMarker + "\n\n" + ServersBeginMarker + "\n" + mid + ServersEndMarker + "\n\n" +
			ScaleBeginMarker + "\nthe scale's\n" + ScaleEndMarker + "\n\n## Notes\nkept\n"
	}
	if err := os.WriteFile(md, []byte(around("stale\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := serversResults(7)
	js := filepath.Join(dir, "bench.json")
	if err := WriteReports(t.Context(), Config{Out: md, JSON: js, Plot: filepath.Join(dir, "bench.svg")}, r); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(md)
	if diff := cmp.Diff(around(ServersMarkdown(r)), string(got)); diff != "" {
		t.Errorf("BENCHMARKS.md (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench.svg")); err == nil {
		t.Errorf("the servers part alone drew the labs' plot")
	}
	back, err := ReadJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r.Servers, back.Servers); diff != "" {
		t.Errorf("servers from JSON (-written +read):\n%s", diff)
	}
}
