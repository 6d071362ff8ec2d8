package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jedib0t/go-pretty/v6/text"
	"golang.org/x/sys/unix"

	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// openTerminal returns the terminal end of a new pseudo-terminal, as a
// command's stdout is when an operator runs it.
func openTerminal(t *testing.T) *os.File {
	t.Helper()
	_, tty := openPTY(t)
	return tty
}

// openPTY returns both ends of a new pseudo-terminal: the master, which
// reads what is written to the terminal, and the terminal.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

func TestStyleHonoursNoColor(t *testing.T) {
	tty := openTerminal(t)
	tests := []struct {
		name    string
		w       *os.File
		noColor string
		want    style
	}{
		{"a terminal", tty, "", style{tty: true, color: true}},
		{"a terminal, NO_COLOR=1", tty, "1", style{tty: true, color: false}},
		{"a terminal, NO_COLOR=0", tty, "0", style{tty: true, color: false}}, // any value, as no-color.org says
		{"a file", os.Stdin, "", style{}},
	}
	for _, tt := range tests {
		t.Setenv("NO_COLOR", tt.noColor)
		if got := styleFor(tt.w); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}

	// And the check report draws what the style says.
	text.EnableColors() // whatever TERM and NO_COLOR this test runs under
	rep := siteReport(t, func(e roles.Expectation) (runner.Observation, bool) {
		return runner.Observation{Reach: roles.Reachable}, e.Want == roles.Filtered && e.To == "mysql-1" // mismatches, in red
	})
	for _, st := range []style{{tty: true, color: true}, {tty: true}} {
		var out bytes.Buffer
		rep.writeText(&out, st, true)
		if got := strings.Contains(out.String(), "\x1b["); got != st.color {
			t.Errorf("%+v: escape sequences %v, want %v:\n%s", st, got, st.color, out.String())
		}
		if !strings.Contains(out.String(), "─") {
			t.Errorf("%+v: no box-drawing table on a terminal:\n%s", st, out.String())
		}
	}
}
