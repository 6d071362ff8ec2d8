package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/runner"
)

// The reliability scenarios (RELIABILITY.md): every fault ends in a known
// state, and the report says what the host really has.

// shortSite writes examples/site.toml with a short timeout and rollback
// delay, so that faults resolve quickly, and returns its path.
func shortSite(t *testing.T, timeout, rollbackAfter string) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(src), `timeout     = "10s"`, `timeout     = "`+timeout+`"`+"\nrollback_after = \""+rollbackAfter+`"`, 1)
	if body == string(src) {
		t.Fatal("examples/site.toml no longer says timeout and rollback_after as this test expects")
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// leftovers lists the processes in host's network namespace other than its
// sshd listener, waiting up to a few seconds for them to end: after a run,
// nothing of fwpush's may stay running on a host (the guard of a run that
// was not confirmed aside, which the caller knows about).
func leftovers(t *testing.T, l *lab.Lab, host string) []string {
	t.Helper()
	return leftoversUntil(t, l, []string{host}, time.Now().Add(5*time.Second))[host]
}

// leftoversUntil is leftovers for several hosts, waiting until deadline.
func leftoversUntil(t *testing.T, l *lab.Lab, hosts []string, deadline time.Time) map[string][]string {
	t.Helper()
	for ; ; time.Sleep(100 * time.Millisecond) {
		procs := hostProcs(t, l, hosts)
		if len(procs) == 0 || time.Now().After(deadline) {
			return procs
		}
	}
}

// hostProcs lists, per host, the processes in its network namespace (as
// ip netns pids does, without starting a process for it) other than its
// sshd listener.
func hostProcs(t *testing.T, l *lab.Lab, hosts []string) map[string][]string {
	t.Helper()
	of := map[string]string{} // namespace link, as in /proc/PID/ns/net: host
	for _, h := range hosts {
		n, err := l.Node(h)
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+n.Netns, &st); err != nil {
			t.Fatalf("namespace of %s: %v", h, err)
		}
		of[fmt.Sprintf("net:[%d]", st.Ino)] = h
	}
	procs := map[string][]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		link, _ := os.Readlink("/proc/" + pid + "/ns/net")
		h, ok := of[link]
		if !ok {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		args := strings.Join(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), " ")
		if strings.Contains(args, "sshd") && strings.Contains(args, "-D") {
			continue // the listener
		}
		procs[h] = append(procs[h], pid+": "+args)
	}
	return procs
}

// confirmed counts the hosts that have a rules.v4, that is, that a run
// confirmed (fwpush writes it last, whole, with a rename), reading their
// files from outside: it is polled.
func confirmed(t *testing.T, l *lab.Lab) int {
	t.Helper()
	n := 0
	for _, h := range siteHosts {
		root, err := l.HostRoot(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(root + "/etc/iptables/rules.v4"); err == nil {
			n++
		}
	}
	return n
}

// A hung remote command (rules.v4 a FIFO: the read's cat blocks) fails
// that host alone, within its deadline, and nothing of fwpush's stays
// running on it.
func TestReliabilityHungHost(t *testing.T) {
	t.Parallel()
	site := shortSite(t, "2s", "10s")
	l := labtest.Start(t, site)
	labtest.Shell(t, l, "mysql-1", "sh", "-c", "rm -f /etc/iptables/rules.v4 && mkfifo /etc/iptables/rules.v4")

	start := time.Now()
	code, out, _ := cli(t, l, "run", "--no-verify", site)
	took := time.Since(start)
	if code != exitFailed {
		t.Errorf("run: exit %d, want 1", code)
	}
	if !strings.Contains(out, "5 applied, 1 failed") || !strings.Contains(out, "error: host mysql-1: read live rules: stopped on the host after 2s") {
		t.Errorf("run: want mysql-1 failed, stopped on the host at its deadline, and the others applied")
	}
	// A hang guard, not a measure: the FIFO's read never ends by itself,
	// so the run's ending at all proves the read's deadline (2s), whose
	// error above names it; 30s leaves room for a loaded machine.
	if took > 30*time.Second {
		t.Errorf("run took %s", took)
	}
	if procs := leftovers(t, l, "mysql-1"); len(procs) > 0 {
		t.Errorf("still running on mysql-1 after the run:\n%s", strings.Join(procs, "\n"))
	}
}

// startCLI starts fwpush on the lab's controller and returns the running
// command with its output buffers.
func startCLI(t *testing.T, l *lab.Lab, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := cliCommand(t, l, nil, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out, &errb
}

// hostRules is a host's live filter rules (both families, rule lines only)
// and its persisted files' rule lines.
func hostRules(t *testing.T, l *lab.Lab, host string) (live, persisted string) {
	t.Helper()
	live = labtest.Shell(t, l, host, "sh", "-c", "iptables-save -t filter; ip6tables-save -t filter")
	persisted = labtest.Shell(t, l, host, "sh", "-c", "cat /etc/iptables/rules.v4 /etc/iptables/rules.v6 2>/dev/null; true")
	return rulesAndPolicies(live), rulesAndPolicies(persisted)
}

// rulesAndPolicies keeps the chain policies and rules of iptables-save
// output, without counters.
func rulesAndPolicies(save string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(save, "\n") {
		switch {
		case strings.HasPrefix(line, "-A "):
			b.WriteString(line + "\n")
		case strings.HasPrefix(line, ":"):
			name, policy, _ := strings.Cut(line, " ")
			policy, _, _ = strings.Cut(policy, " ")
			b.WriteString(name + " " + policy + "\n")
		}
	}
	return b.String()
}

// A signal mid-run (the operator's ^C, a kill, the terminal closing)
// stops starting hosts, lets the ones in flight settle, and reports with
// exit 128 + the signal's number what every host really has.
func TestReliabilitySignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			site := shortSite(t, "3s", "8s")
			body, _ := os.ReadFile(site)
			os.WriteFile(site, bytes.Replace(body, []byte("parallel    = 20"), []byte("parallel    = 1"), 1), 0o644)
			l := labtest.Start(t, site)
			before := map[string]string{}
			for _, h := range siteHosts {
				before[h], _ = hostRules(t, l, h)
			}

			cmd, out, errb := startCLI(t, l, "run", "--json", "--no-verify", site)
			// Once a host has been applied, interrupt.
			firstPersisted(t, l)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			want := 128 + int(sig) // 130 SIGINT, 143 SIGTERM, 129 SIGHUP
			if !errors.As(err, &ee) || ee.ExitCode() != want {
				t.Fatalf("fwpush run: %v, want exit %d\n%s%s", err, want, out, errb)
			}
			t.Logf("report:\n%s%s", out, errb)
			var rep runReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("the report is not one JSON document: %v", err)
			}
			counts := map[string]int{}
			for _, h := range rep.Hosts {
				counts[h.Status]++
				live, persisted := hostRules(t, l, h.Host)
				switch runner.Status(h.Status) {
				case runner.Applied:
					if persisted == "" || live != persisted || live == before[h.Host] {
						t.Errorf("%s reported applied, but its live rules are not the persisted policy:\nlive:\n%s\npersisted:\n%s", h.Host, live, persisted)
					}
				case runner.Skipped:
					if persisted != "" || live != before[h.Host] {
						t.Errorf("%s reported skipped, but it changed:\nlive:\n%s\npersisted:\n%s", h.Host, live, persisted)
					}
				default:
					t.Errorf("%s: %s (%s), want applied or skipped", h.Host, h.Status, h.Error)
				}
			}
			if counts["applied"] == 0 || counts["skipped"] == 0 || rep.ExitCode != want {
				t.Errorf("counts %v, exit_code %d: want hosts applied and skipped, and %d", counts, rep.ExitCode, want)
			}
			// Nothing was left half-way: every guard is settled.
			for _, h := range siteHosts {
				if procs := leftovers(t, l, h); len(procs) > 0 {
					t.Errorf("still running on %s:\n%s", h, strings.Join(procs, "\n"))
				}
			}
		})
	}
}

// settled waits until nothing of fwpush's runs on site's hosts any more
// (every guard fired or disarmed, every apply ended: then nothing can
// change), at most until every guard has had time to fire, then checks
// what a fleet must be left with, whatever happened to the runs before:
// the policy live and persisted on every host, no apply undecided, nothing
// of fwpush's running.
func settled(t *testing.T, l *lab.Lab, rollbackAfter time.Duration) {
	t.Helper()
	// The guards' time, and the few seconds leftovers gives processes to end.
	deadline := time.Now().Add(rollbackAfter + 3*time.Second + 5*time.Second)
	running := leftoversUntil(t, l, siteHosts, deadline)
	for _, h := range siteHosts {
		live, persisted := hostRules(t, l, h)
		if persisted == "" || live != persisted {
			t.Errorf("%s: live rules are not the persisted policy:\nlive:\n%s\npersisted:\n%s", h, live, persisted)
		}
		if open := labtest.Shell(t, l, h, "sh", "-c", "for d in /run/fwpush/runs/*; do [ -d \"$d\" ] && [ ! -e \"$d/decided\" ] && echo \"$d\"; done; true"); open != "" {
			t.Errorf("%s: applies still undecided: %s", h, open)
		}
		if procs := running[h]; len(procs) > 0 {
			t.Errorf("still running on %s:\n%s", h, strings.Join(procs, "\n"))
		}
	}
}

// firstPersisted waits until some host has rules.v4, that is, a host has
// been confirmed: others are then in the middle of their own apply.
func firstPersisted(t *testing.T, l *lab.Lab) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); confirmed(t, l) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no host was applied within a minute")
		}
	}
}

// An interrupted run, then an immediate re-run: every host ends with the
// policy, its guards settled and rules.v4 equal to the live rules once
// every guard could have fired. ^C lets the hosts in flight settle;
// SIGKILL does not, and leaves guards armed, which the re-run settles.
func TestReliabilityInterruptThenRerun(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			site := shortSite(t, "3s", "8s")
			l := labtest.Start(t, site)
			cmd, out, errb := startCLI(t, l, "run", "--no-verify", site)
			firstPersisted(t, l)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			t.Logf("interrupted run:\n%s%s", out, errb)
			code, out2, errs2 := cli(t, l, "run", "-v", "--no-verify", site)
			if code != exitOK || strings.Contains(out2, "rolled back") || strings.Contains(out2, "failed") {
				t.Errorf("the re-run: exit %d, want 0 with every host applied or unchanged", code)
			}
			settled(t, l, 8*time.Second)
			if t.Failed() {
				t.Logf("the re-run's log:\n%s", errs2)
				for _, h := range siteHosts {
					t.Logf("%s:\n%s", h, labtest.Shell(t, l, h, "sh", "-c", `cd /run/fwpush || exit 0
for d in runs/*; do echo "== $d"; ls "$d" | tr '\n' ' '; echo
  for f in outcome applied.status started fire_at guard.pid decided; do [ ! -e "$d/$f" ] || echo "$f: $(cat "$d/$f")"; done
  sed 's/^/  log: /' "$d/apply.log" 2>/dev/null; done
echo "current: $(cat current 2>/dev/null | tr '\n' ' ')"; echo "lock: $(cat lock/owner 2>/dev/null | tr '\n' ' ')"
cat /var/lib/fwpush/history 2>/dev/null; true`))
				}
			}
			// A third run finds nothing to do.
			if code, out, _ := cli(t, l, "run", "--no-verify", site); code != exitOK || !strings.Contains(out, "6 unchanged") {
				t.Errorf("a run after everything settled: exit %d, want 0 and every host unchanged", code)
			}
		})
	}
}

// Two runs started together never interleave on a host: through a
// symlink and with another $TMPDIR they are one inventory, and the second
// waits for the first on this machine; from a copy (another laptop's
// inventory) they meet at each host's lock.
func TestReliabilityConcurrentRuns(t *testing.T) {
	t.Parallel()
	site := shortSite(t, "3s", "8s")
	l := labtest.Start(t, site)
	link := filepath.Join(t.TempDir(), "link.toml")
	if err := os.Symlink(site, link); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "laptop2.toml")
	body, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, body, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, second string
		// oneInventory: the runs take turns on this machine, so the
		// first changes every host and the second finds them done.
		oneInventory bool
	}{{"symlink and TMPDIR", link, true}, {"another laptop", other, false}} {
		t.Run(tc.name, func(t *testing.T) {
			// Every host has something to change.
			for _, h := range siteHosts {
				labtest.Shell(t, l, h, "sh", "-c", "iptables -I INPUT 1 -p tcp --dport 9 -j ACCEPT")
			}
			a, outA, errA := startCLI(t, l, "run", "--no-verify", "--json", site)
			b := cliCommand(t, l, []string{"TMPDIR=" + t.TempDir()}, "run", "--no-verify", "--json", tc.second)
			var outB, errB bytes.Buffer
			b.Stdout, b.Stderr = &outB, &errB
			errRunB := b.Run()
			errRunA := a.Wait()
			t.Logf("run A: %v\n%s%s\nrun B: %v\n%s%s", errRunA, outA, errA, errRunB, outB.String(), errB.String())
			if errRunA != nil || errRunB != nil {
				t.Errorf("runs: %v, %v; want both to succeed", errRunA, errRunB)
			}
			// changed[h] counts the runs that changed h; a host is
			// otherwise unchanged, never rolled back, failed or unknown.
			changed := map[string]int{}
			var changedBy [2]int
			for i, out := range []string{outA.String(), outB.String()} {
				validateJSON(t, "run", []byte(out))
				var rep runReport
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatalf("run %c: %v", 'A'+i, err)
				}
				if len(rep.Hosts) != len(siteHosts) {
					t.Errorf("run %c reports %d hosts, want %d", 'A'+i, len(rep.Hosts), len(siteHosts))
				}
				for _, h := range rep.Hosts {
					switch h.Status {
					case "unchanged":
					case "applied", "drift_repaired":
						changed[h.Host]++
						changedBy[i]++
					default:
						t.Errorf("run %c: %s %s, want it changed or found done", 'A'+i, h.Host, h.Status)
					}
				}
			}
			// Each host was changed by one run; the other found it done.
			// Runs of one inventory take turns on this machine, so the
			// second finds every host done. Runs from two machines meet
			// at each host's lock: the second waits for the first's
			// confirm, and a second that read the host before the first
			// applied applies the same policy again (no harm, and its
			// report says so), so each host is changed once or twice.
			for _, h := range siteHosts {
				if n := changed[h]; n < 1 || tc.oneInventory && n != 1 {
					t.Errorf("%s changed by %d runs, want it changed by one run (or, from two machines, by both)", h, n)
				}
			}
			if tc.oneInventory && changedBy[0] != 0 && changedBy[1] != 0 {
				t.Errorf("runs A and B changed %d and %d hosts: want one run to change every host and the other to wait for it", changedBy[0], changedBy[1])
			}
			settled(t, l, 8*time.Second)
		})
	}
}

// sshdPid is the pid of host's sshd listener.
func sshdPid(t *testing.T, l *lab.Lab, host string) int {
	t.Helper()
	n, err := l.Node(host)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "pids", n.Netns).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range strings.Fields(string(out)) {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if args := string(cmdline); strings.Contains(args, "sshd") && strings.Contains(args, "-D") {
			var p int
			if _, err := fmt.Sscan(pid, &p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("no sshd in %s", host)
	return 0
}

// Faults of one host or of the tunnel end in a known state, reported as
// what the hosts have, within bounded time.
func TestReliabilityFaults(t *testing.T) {
	t.Parallel()
	// Short, so that a fault costs little, and not shorter: every other
	// host must still connect in time on a loaded machine.
	site := shortSite(t, "4s", "8s")
	l := labtest.Start(t, site)

	t.Run("a host that accepts TCP but never speaks SSH is unreachable, alone", func(t *testing.T) {
		pid := sshdPid(t, l, "mysql-2")
		// Stopped, sshd's socket still completes TCP handshakes.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
		start := time.Now()
		code, out, _ := cli(t, l, "run", "--no-verify", site)
		if code != exitFailed || !strings.Contains(out, "5 applied, 1 unreachable") || !strings.Contains(out, "host mysql-2") {
			t.Errorf("run: exit %d, want 1 with mysql-2 unreachable and the others applied", code)
		}
		// A hang guard: a stopped sshd never finishes a handshake, so the
		// run's ending at all proves the SSH timeout (4s) bounds it.
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("run took %s", took)
		}
		_ = syscall.Kill(pid, syscall.SIGCONT)
		if code, out, _ := cli(t, l, "run", "--no-verify", site); code != exitOK || !strings.Contains(out, "5 unchanged, 1 applied") {
			t.Errorf("run once sshd answers again: exit %d, want mysql-2 applied", code)
		}
	})

	t.Run("/etc/iptables read-only: the rules are applied, the report says they are not persisted", func(t *testing.T) {
		labtest.Shell(t, l, "mysql-1", "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		labtest.Shell(t, l, "mysql-1", "sh", "-c", "rm -f /etc/iptables/rules.v4 && mount --bind /etc/iptables /etc/iptables && mount -o remount,ro,bind /etc/iptables")
		t.Cleanup(func() { _, _ = l.Shell(context.Background(), "mysql-1", "umount", "/etc/iptables") })
		code, out, _ := cli(t, l, "run", "--no-verify", site)
		if code != exitFailed || !strings.Contains(out, "error: host mysql-1: persist rules.v4") || !strings.Contains(out, "Read-only file system") {
			t.Errorf("run: exit %d, want mysql-1 failed at persisting, saying why", code)
		}
		var rep runReport
		_, js, _ := cli(t, l, "run", "--no-verify", "--dry-run", "--json", site)
		validateJSON(t, "run", []byte(js))
		_ = json.Unmarshal([]byte(js), &rep)
		for _, h := range rep.Hosts {
			if h.Host == "mysql-1" && (*h.Persisted || *h.Added+*h.Removed != 0) {
				t.Errorf("mysql-1 after the run: %+v; want its live rules the policy, not persisted", h)
			}
		}
		labtest.Shell(t, l, "mysql-1", "umount", "/etc/iptables")
		if code, out, _ := cli(t, l, "run", "--no-verify", site); code != exitOK || !strings.Contains(out, "5 unchanged, 1 applied") {
			t.Errorf("run once /etc/iptables is writable: exit %d, want mysql-1 persisted", code)
		}
	})

	t.Run("the tunnel down: every host is reported, nothing changes, the run ends", func(t *testing.T) {
		before := snapshot(t, l)
		labtest.Shell(t, l, "tunnel-1", "ip", "link", "set", "eth0", "down")
		t.Cleanup(func() { _, _ = l.Shell(context.Background(), "tunnel-1", "ip", "link", "set", "eth0", "up") })
		start := time.Now()
		code, out, errs := cli(t, l, "run", "--no-verify", site)
		if code != exitFailed || !strings.Contains(out+errs, "tunnel-1") {
			t.Errorf("run: exit %d, want 1 naming the tunnel", code)
		}
		if strings.Contains(out, "applied") || strings.Contains(out, "unchanged") {
			t.Errorf("a host reported reached with the tunnel down")
		}
		// A hang guard: packets to the tunnel vanish, so the run's ending
		// at all proves the SSH timeout (4s) bounds it.
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("run took %s", took)
		}
		sameSnapshot(t, "a run with the tunnel down", before, snapshot(t, l))
	})
}
