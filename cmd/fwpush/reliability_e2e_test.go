package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
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
