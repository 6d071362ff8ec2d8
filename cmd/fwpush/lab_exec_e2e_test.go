package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/fwpush/fwpush/lab/labtest"
)

// TestLabExecInterrupted: SIGINT to fwpush lab exec FILE -- fwpush run
// FILE reaches the run, which settles its hosts, reports and exits 130;
// lab exec exits 130 too (it used to kill the run: exit 255, no report).
func TestLabExecInterrupted(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml") // a copy: fwpush locks the inventory it runs
	l := labtest.Start(t, site)

	// One host at a time, so that hosts are left when the signal comes.
	bin, env := cliPath(t)
	cmd := exec.CommandContext(t.Context(), bin, "lab", "exec", "--name", l.Name, site, "--", bin, "run", "--parallel", "1", site)
	cmd.Env = append(os.Environ(), env...)
	// Not in the terminal's foreground job, if the test has one: the
	// signal comes from kill alone, and lab exec must pass it on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var out []string
	for lines.Scan() {
		out = append(out, lines.Text())
		if len(out) == 1 {
			// A host is done: the run is under way, its signal handling set.
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Errorf("lab exec: %v, want exit %d", err, exitInterrupted)
	}
	report := strings.Join(out, "\n")
	t.Logf("stdout:\n%s\nstderr:\n%s", report, stderr.String())
	if !strings.Contains(report, "6 hosts in ") || !strings.Contains(report, "skipped") {
		t.Errorf("the run's report does not say that it was interrupted, with the hosts it skipped")
	}
}
