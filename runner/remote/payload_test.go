package remote

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPayload: lib.sh's payload reads exactly a payload and its mark off
// stdin, and no further, whether builtins read it (up to 4 KiB) or head
// does; it refuses a payload cut short or followed by anything but the
// mark; under dash and bash (sh on other distributions), whose sizes are
// bytes even where the locale is UTF-8.
func TestPayload(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n", 80) // > 4 KiB
	for _, shell := range []string{"dash", "bash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("no %s", shell)
			continue
		}
		for _, tc := range []struct {
			name, payload string
			size          int    // its size, when not len(payload)
			after         string // what follows it on stdin; endMark when ""
			unwritable    bool   // FILE cannot be made
			ok            bool
		}{
			{name: "empty", ok: true},
			{name: "lines", payload: "*filter\n:INPUT DROP [0:0]\nCOMMIT\n", ok: true},
			{name: "no last newline", payload: "*filter\nCOMMIT", ok: true},
			{name: "blanks, backslashes, spaces", payload: "\n  a \\n b\\\n\t\n\n", ok: true},
			{name: "a line that ends like the mark", payload: "x@@fwpush:end@@\n@@fwpush:end@@x\n", ok: true},
			{name: "not ASCII", payload: "-A INPUT -m comment --comment \"café ☕\" -j ACCEPT\n", ok: true},
			{name: "large: head", payload: long, ok: true},
			{name: "large, no last newline", payload: strings.TrimSuffix(long, "\n"), ok: true},
			{name: "cut short", payload: "*filter\nCOMMIT\n", after: "@@fwpush:", ok: false},
			{name: "cut short, large", payload: long, after: "@@fwpush:", ok: false},
			{name: "longer than said", payload: "*filter\nCOMMIT\n", size: 8, ok: false},
			{name: "shorter than said", payload: "*filter\nCOMMIT\n", size: 20, ok: false},
			{name: "shorter than said, no last newline", payload: "*filter\nCOMMIT", size: 16, ok: false},
			{name: "no mark", payload: "*filter\nCOMMIT\n", after: "COMMIT\n", ok: false},
			{name: "unwritable", payload: "*filter\nCOMMIT\n", unwritable: true, ok: false},
			{name: "unwritable, empty", unwritable: true, ok: false},
		} {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				size := len(tc.payload)
				if tc.size != 0 {
					size = tc.size
				}
				after := cmpOr(tc.after, endMark)
				out := filepath.Join(t.TempDir(), "out")
				if tc.unwritable {
					out = filepath.Join(t.TempDir(), "no such directory", "out")
				}
				script := code("lib.sh") + `if payload "$1" "$2"; then IFS= read -r rest; echo "ok $rest"; else echo refused; fi`
				c := exec.Command(path, "-c", script, "fwpush", strconv.Itoa(size), out)
				c.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8"}
				c.Stdin = strings.NewReader(tc.payload + after + "next\n")
				var stderr bytes.Buffer
				c.Stderr = &stderr
				got, err := c.Output()
				if err != nil {
					t.Fatalf("%v: %s", err, stderr.String())
				}
				if !tc.ok {
					if string(got) != "refused\n" {
						t.Errorf("payload took %q, want it refused", got)
					}
					return
				}
				if string(got) != "ok next\n" {
					t.Fatalf("payload: %q, want it to stop at the mark", got)
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if string(data) != tc.payload {
					t.Errorf("the file holds %q, want %q", data, tc.payload)
				}
			})
		}
	}
}

// TestUTC: record.sh's utc prints a time as date -u +%Y-%m-%dT%H:%M:%SZ
// would, at the edges of days, months, leap years and centuries.
func TestUTC(t *testing.T) {
	t.Parallel()
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("no dash")
	}
	var secs []int64
	for _, d := range []string{"1970-01-01", "1999-12-31", "2000-02-28", "2000-02-29", "2000-03-01", "2024-02-29",
		"2026-12-06", "2038-01-19", "2100-02-28", "2100-03-01", "2400-02-29"} {
		day, err := time.Parse(time.DateOnly, d)
		if err != nil {
			t.Fatal(err)
		}
		secs = append(secs, day.Unix(), day.Unix()+86399, day.Unix()+3661)
	}
	for i := range int64(500) {
		secs = append(secs, i*7919*86400/3+i*4099) // spread over the years to 2400
	}
	var script strings.Builder
	script.WriteString(code("record.sh"))
	want := ""
	for _, s := range secs {
		fmt.Fprintf(&script, "utc %d; echo \"$t\"\n", s)
		want += time.Unix(s, 0).UTC().Format("2006-01-02T15:04:05Z") + "\n"
	}
	got, err := exec.Command(dash, "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("utc (-date +got):\n%s", diff)
	}
}
