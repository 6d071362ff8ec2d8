package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// TestPassthroughSignals: lab exec passes the signals that interrupt
// fwpush on to its command and ends as the command does, 130 after its
// own ^C handling, instead of killing it; a ^C the terminal sent the
// whole job has reached the command already and is not sent twice.
func TestPassthroughSignals(t *testing.T) {
	// The command says when its traps are set, and which signals it got.
	const script = `trap 'echo got INT; exit 130' INT
trap 'echo got TERM; exit 143' TERM
trap 'echo got HUP; exit 129' HUP
echo ready
while :; do sleep 0.01; done`
	tests := []struct {
		name   string
		sig    os.Signal
		shared bool // fwpush is in the terminal's foreground job
		want   []string
		code   int
	}{
		{"SIGINT from kill, not a terminal", os.Interrupt, false, []string{"got INT"}, 130},
		{"SIGHUP from kill, not a terminal", syscall.SIGHUP, false, []string{"got HUP"}, 129},
		{"SIGTERM on a terminal", syscall.SIGTERM, true, []string{"got TERM"}, 143},
		// ^C: the terminal sent it to the command too (here, nobody did:
		// the command goes on until the SIGTERM that follows).
		{"^C on a terminal", os.Interrupt, true, []string{"got TERM"}, 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A signal ignored when the test began (nohup ignores
			// SIGHUP) is ignored by the command too, and a shell
			// cannot trap it: the command would never end.
			for _, sig := range []os.Signal{tt.sig, syscall.SIGTERM} {
				if signal.Ignored(sig) {
					t.Skipf("%v is ignored here (started under nohup?): the command inherits that and cannot trap it", sig)
				}
			}
			c := exec.Command("sh", "-c", script)
			out, w := io.Pipe()
			c.Stdout = w
			sigs := make(chan os.Signal)
			done := make(chan error, 1)
			go func() {
				done <- passthrough(c, sigs, func() bool { return tt.shared })
				w.Close()
			}()
			lines := bufio.NewScanner(out)
			if !lines.Scan() || lines.Text() != "ready" {
				t.Fatalf("the command did not start: %q", lines.Text())
			}
			sigs <- tt.sig
			if tt.sig != syscall.SIGTERM && tt.shared {
				sigs <- syscall.SIGTERM
			}
			var got []string
			for lines.Scan() {
				got = append(got, lines.Text())
			}
			err := <-done
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != tt.code || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("passthrough: %v, the command printed %q; want exit %d and %q", err, got, tt.code, tt.want)
			}
		})
	}

	t.Run("a command a signal ends", func(t *testing.T) {
		// As above: sleep would inherit SIGINT ignored, and sleep on.
		if signal.Ignored(os.Interrupt) {
			t.Skip("SIGINT is ignored here (started with & by a shell without job control?): sleep inherits that")
		}
		c := exec.Command("sleep", "60")
		sigs := make(chan os.Signal, 1)
		sigs <- os.Interrupt
		err := passthrough(c, sigs, func() bool { return false })
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 130 {
			t.Errorf("sleep ended by SIGINT: %v, want exit 130 as a shell says", err)
		}
	})
	t.Run("the exit status", func(t *testing.T) {
		err := passthrough(exec.Command("sh", "-c", "exit 7"), nil, nil)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 7 {
			t.Errorf("sh -c 'exit 7': %v", err)
		}
		if err := passthrough(exec.Command("true"), nil, nil); err != nil {
			t.Errorf("true: %v", err)
		}
	})
}
