package main

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fwpush/fwpush/lab/labtest"
)

// TestProgressOnTerminal: on a terminal, run shows the hosts in flight with
// their step and time, while others finish above them. mysql-1 is held in
// its read (its rules.v4 is a FIFO the read's cat waits on) until the test
// has seen it in flight.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	// A read's deadline (the timeout) far beyond what a loaded machine
	// needs for the other hosts to finish.
	site := shortSite(t, "30s", "60s")
	l := labtest.Start(t, site)
	labtest.Shell(t, l, "mysql-1", "sh", "-c", "rm -f /etc/iptables/rules.v4 && mkfifo /etc/iptables/rules.v4")

	ptmx, tty := openPTY(t)
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var screen bytes.Buffer
	read := make(chan struct{}) // closed once the terminal is closed and read to its end
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func() string {
		mu.Lock()
		defer mu.Unlock()
		return screen.String()
	}

	cmd := cliCommand(t, l, []string{"NO_COLOR=1"}, "run", "--no-verify", site)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = tty, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inFlight := regexp.MustCompile(`  mysql-1 +read +\d+\.\ds\r?\n`)
	finished := regexp.MustCompile(`wordpress-1 +applied \(\+\d+ -\d+[,)]`)
	deadline := time.Now().Add(30 * time.Second)
	for !(inFlight.MatchString(seen()) && finished.MatchString(seen())) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("after 30s, no mysql-1 in its read with the others done on the screen:\n%q", seen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := len(seen())
	// Let mysql-1's read go on.
	labtest.Shell(t, l, "mysql-1", "sh", "-c", "echo > /etc/iptables/rules.v4")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	// The last bytes through the terminal: once its last holder closes it,
	// the master reads what is left, then fails.
	tty.Close()
	<-read
	got := seen()
	t.Logf("the terminal saw:\n%q", got)
	done := regexp.MustCompile(`mysql-1 +applied`).FindStringIndex(got)
	if done == nil || done[0] < held {
		t.Errorf("mysql-1 was not shown applied after it was shown in flight")
	}
	if !strings.Contains(got, "\x1b[J") || !strings.Contains(got, "┌") {
		t.Errorf("no block redrawn in place, or no box-drawn table, on a terminal")
	}
	if regexp.MustCompile("\x1b\\[[0-9;]*m").MatchString(got) {
		t.Errorf("colours on the terminal despite NO_COLOR")
	}
	if !strings.Contains(got, "6 hosts in ") || strings.Contains(got[strings.LastIndex(got, "6 hosts in "):], "  mysql-1 ") {
		t.Errorf("the block is still drawn below the summary")
	}
}
