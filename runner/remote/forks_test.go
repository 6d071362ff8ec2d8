package remote

import (
	"os/exec"
	"testing"

	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// TestForks holds the processes a run costs a host, counted with strace
// on a stub host: every process the steps fork (their login shells
// included), where the stubs of iptables and ip stand for one process
// each, as the real ones are. What a host pays at every run of fwpush:
// an unchanged host is read (facts); a changed one is read, applied and
// confirmed, with its persisted files and digest rewritten, and a line
// added to its history (date(1) gives the host's time: one process, on a
// changed host only).
func TestForks(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (make test installs it)")
	}
	if out, err := exec.Command("strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v: %s", err, out)
	}
	for _, tc := range []struct {
		name    string
		history bool  // the host has a history already: its size is read
		steps   []int // the budget of each step
	}{
		{"unchanged", false, []int{5}},
		{"changed", false, []int{5, 17, 9}},
		{"changed", true, []int{5, 17, 10}},
	} {
		name := tc.name
		if tc.history {
			name += ", with a history"
		}
		t.Run(name, func(t *testing.T) {
			c := caseNamed(t, tc.name)
			s := newStubHost(t, c.Host)
			if tc.history {
				s.write("var/lib/fwpush/history", "{}\n")
			}
			s.trace = true
			runCase(t, s, c)
			t.Logf("processes per step: %v", s.forks)
			for i, budget := range tc.steps {
				if i >= len(s.forks) || s.forks[i] > budget {
					t.Errorf("step %d (%s): %v processes, budget %d", i+1, c.Steps[i].Do, s.forks, budget)
				}
			}
		})
	}
}

func caseNamed(t *testing.T, name string) remotetest.Case {
	t.Helper()
	for _, c := range remotetest.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return remotetest.Case{}
}
