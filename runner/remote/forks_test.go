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
// added to its history (at the time its apply read, with no date(1)).
//
// Per step: the read 5 (the login shell, the sh that timeout(1) starts,
// ip, iptables-save, ip6tables-save); the apply 15 on a host's first run
// since boot (login shell and sh, the mkdir of /run/fwpush/runs, the one
// of the run's directory and the host lock, date, both families' tests
// and saves, flock for the run's lock, the guard's sh and its sleep, flock
// -w waiting for the apply, both families' restores; the payloads read by
// builtins), 14 after (no runs directory to make); the confirm 6 (login
// shell and sh, mv of rules.v4, rules.v6 and the digest, one rm for the
// lock and the runs done with), 7 where something else wrote the history
// since fwpush last did (wc counts it).
func TestForks(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (make test installs it)")
	}
	if out, err := exec.Command("strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v: %s", err, out)
	}
	// again changes a host the case "changed" changed (policy B to C): a
	// run of fwpush like every one after a host's first since boot, which
	// finds fwpush's directory in /run and the run before it there, and a
	// history.
	again := remotetest.Case{
		Name: "changed again",
		Steps: []remotetest.Step{
			{Do: remotetest.Facts, Read: &remotetest.Read{V4: remotetest.B4, V6: remotetest.B6, Rules4: remotetest.B4, Rules6: remotetest.B6,
				Applied: remotetest.DigestB, Persistent: true}},
			{Do: remotetest.Apply, Token: remotetest.RunA, V4: []byte(remotetest.C4), V6: []byte(remotetest.B6)},
			{Do: remotetest.Confirm, Token: remotetest.RunA, V4: []byte(remotetest.C4), V6: []byte(remotetest.B6), Digest: remotetest.DigestC,
				Outcome: "confirmed"},
		},
		End: remotetest.Host{V4: remotetest.C4, V6: remotetest.B6, Rules4: remotetest.C4, Rules6: remotetest.B6, Applied: remotetest.DigestC,
			Persistent: true},
	}
	for _, tc := range []struct {
		name    string
		history bool  // the host has a history already: its size is read
		steps   []int // the budget of each step
	}{
		{"unchanged", false, []int{5}},
		{"changed", false, []int{5, 15, 6}},
		{"changed", true, []int{5, 15, 7}},
		{again.Name, true, []int{5, 14, 6}},
	} {
		name := tc.name
		if tc.history && tc.name != again.Name {
			name += ", with a history"
		}
		t.Run(name, func(t *testing.T) {
			first := tc.name
			if tc.name == again.Name {
				first = "changed"
			}
			c := caseNamed(t, first)
			s := newStubHost(t, c.Host)
			if tc.history {
				s.write("var/lib/fwpush/history", "{}\n")
			}
			if tc.name == again.Name {
				runCase(t, s, c)
				c = again
			}
			s.trace = true
			runCase(t, s, c)
			s.logExecs()
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
