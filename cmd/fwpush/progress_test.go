package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
)

func TestProgressBlock(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, live: true, hosts: map[string]*flight{}, size: func() (int, int) { return 40, 10 }}
	p.start("mysql-1")
	p.start("wordpress-1")
	p.step("mysql-1", "apply")
	if got := p.block(); len(got) != 2 || !strings.HasPrefix(got[0], "  mysql-1              apply      0.") || !strings.Contains(got[1], "wordpress-1          start") {
		t.Errorf("block %q, want both hosts with their steps", got)
	}
	out.Reset()
	p.done("mysql-1", "mysql-1 applied")
	if want := "\r\x1b[2A\x1b[Jmysql-1 applied\n  wordpress-1 "; !strings.HasPrefix(out.String(), want) {
		t.Errorf("done wrote %q, want the block erased, the line, the block again: %q...", out.String(), want)
	}
	p.checking(71)
	p.probed(64)
	if got := p.block(); got[len(got)-1] != "check: 64/71 probes" {
		t.Errorf("block %q, want the check's progress last", got)
	}
	// Many hosts: as many as the screen holds, and a count.
	for _, h := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		p.start(h + "-host-with-a-name-longer-than-the-terminal-is-wide")
	}
	got := p.block()
	if len(got) != 8 || !strings.Contains(got[6], "… and 5 more hosts") {
		t.Errorf("block of 11 hosts on 10 lines: %q", got)
	}
	for _, l := range got {
		if n := len([]rune(l)); n > 39 {
			t.Errorf("line %q is %d wide, the terminal 40", l, n)
		}
	}
	out.Reset()
	p.close()
	if out.String() != "\r\x1b[8A\x1b[J" {
		t.Errorf("close wrote %q, want the block erased", out.String())
	}

	// Not on a terminal: the lines, nothing else.
	out.Reset()
	p = newProgress(&out, style{}, true)
	p.start("mysql-1")
	p.step("mysql-1", "read")
	p.done("mysql-1", "mysql-1 unchanged")
	p.close()
	if out.String() != "mysql-1 unchanged\n" {
		t.Errorf("off a terminal: %q", out.String())
	}
}

func TestSSHOverrides(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    [3]string // parallel, timeout, rollback_after
		wantErr string
	}{
		{"the inventory's", nil, nil, [3]string{"20", "10s", "30s"}, ""},
		{"flags", []string{"--parallel", "3", "--timeout", "4s", "--rollback-after", "1m"}, nil, [3]string{"3", "4s", "1m0s"}, ""},
		{"the environment", nil, map[string]string{"FWPUSH_PARALLEL": "7", "FWPUSH_TIMEOUT": "5s", "FWPUSH_ROLLBACK_AFTER": "40s"}, [3]string{"7", "5s", "40s"}, ""},
		{"a flag over the environment", []string{"--parallel", "2"}, map[string]string{"FWPUSH_PARALLEL": "7"}, [3]string{"2", "10s", "30s"}, ""},
		{"parallel 0", []string{"--parallel", "0"}, nil, [3]string{}, "--parallel 0: hosts worked on at once must be 1 to 1000"},
		{"parallel too many", nil, map[string]string{"FWPUSH_PARALLEL": "5000"}, [3]string{}, "FWPUSH_PARALLEL=5000: hosts worked on at once must be 1 to 1000"},
		{"a timeout too long", []string{"--timeout", "3m", "--rollback-after", "10m"}, nil, [3]string{}, "--timeout 3m0s: out of range 1s to 2m0s"},
		{"a rollback too short", []string{"--rollback-after", "2s"}, nil, [3]string{}, "--rollback-after 2s: out of range 5s to 10m0s"},
		{"not a duration", nil, map[string]string{"FWPUSH_TIMEOUT": "soon"}, [3]string{}, `FWPUSH_TIMEOUT=soon: not a duration`},
		{"a guard before the timeout", []string{"--timeout", "30s"}, nil, [3]string{}, "rollback-after 30s is not clearly longer than the timeout 30s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"FWPUSH_PARALLEL", "FWPUSH_TIMEOUT", "FWPUSH_ROLLBACK_AFTER"} {
				t.Setenv(k, tt.env[k])
			}
			inv, err := inventory.Load(exampleSite)
			if err != nil {
				t.Fatal(err)
			}
			var o sshOverrides
			cmd := &cobra.Command{}
			o.register(cmd)
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			o.seen(cmd)
			err = o.apply(inv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [3]string{strconv.Itoa(inv.SSH.Parallel), inv.SSH.Timeout.String(), inv.SSH.RollbackAfter.String()}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
