package main

import (
	"bytes"
	"encoding/json"
	"errors"
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
	n, err := l.Node(host)
	if err != nil {
		t.Fatal(err)
	}
	var procs []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("ip", "netns", "pids", n.Netns).Output()
		if err != nil {
			t.Fatalf("ip netns pids %s: %v", n.Netns, err)
		}
		procs = nil
		for _, pid := range strings.Fields(string(out)) {
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil || len(cmdline) == 0 {
				continue // gone, or a zombie
			}
			args := strings.Join(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), " ")
			if strings.Contains(args, "sshd") && strings.Contains(args, "-D") {
				continue // the listener
			}
			procs = append(procs, pid+": "+args)
		}
		if len(procs) == 0 || time.Now().After(deadline) {
			return procs
		}
	}
}

// A hung remote command (rules.v4 a FIFO: the read's cat blocks) fails
// that host alone, within its deadline, and nothing of fwpush's stays
// running on it.
func TestReliabilityHungHost(t *testing.T) {
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
	// The deadline of the read (2s) and the network's share (2s), with room
	// for a loaded machine; the tunnel, last, must not wait for mysql-1.
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
	cmd := l.Command(t.Context(), os.Args[0], args...)
	cmd.Env = append(cmd.Env, "FWPUSH_TEST_CLI=1")
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
// exit 130 what every host really has.
func TestReliabilitySignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
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
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				applied := 0
				for _, h := range siteHosts {
					if _, p := hostRules(t, l, h); p != "" {
						applied++
					}
				}
				if applied > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no host was applied within 30s")
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
				t.Fatalf("fwpush run: %v, want exit 130\n%s%s", err, out, errb)
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
			if counts["applied"] == 0 || counts["skipped"] == 0 || rep.ExitCode != exitInterrupted {
				t.Errorf("counts %v, exit_code %d: want hosts applied and skipped, and 130", counts, rep.ExitCode)
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
