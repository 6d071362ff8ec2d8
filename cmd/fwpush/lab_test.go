package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

func TestLabUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[ssh]\ntunnel = \"nowhere\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "up"}, "takes one inventory file"},
		{[]string{"lab", "up", "--name", "Bad_Name", "../../examples/site.toml"}, `invalid lab name "Bad_Name"`},
		{[]string{"lab", "up", bad}, `ssh.tunnel: host "nowhere" does not exist`},
		{[]string{"lab", "exec", "../../examples/site.toml", "hostname"}, "then -- and a command"},
		{[]string{"lab", "exec", "../../examples/site.toml", "--"}, "no command after --"},
		{[]string{"lab", "shell", "../../examples/site.toml", "--", "hostname"}, "takes INVENTORY HOST before --, got 1"},
		{[]string{"lab", "probe", "../../examples/site.toml", "controller", "203.0.113.10"}, "takes INVENTORY FROM ADDRESS PORT"},
		{[]string{"lab", "probe", "../../examples/site.toml", "controller", "tunnel-1", "22"}, `"tunnel-1" is not an IP address`},
		{[]string{"lab", "probe", "../../examples/site.toml", "controller", "203.0.113.10", "ssh"}, `"ssh" is not a port`},
		{[]string{"lab", "status", "--nmae", "x", "../../examples/site.toml"}, "unknown flag: --nmae"},
	} {
		code, _, errs := fwpush(t, tc.args...)
		if code != exitInvalid || !strings.Contains(errs, tc.want) {
			t.Errorf("fwpush %s: code %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, errs, exitInvalid, tc.want)
		}
	}
}

func TestLabCommands(t *testing.T) {
	labtest.Require(t)
	t.Parallel()
	site := "../../examples/site.toml"
	name := labtest.Name()
	t.Cleanup(func() { lab.Down(context.Background(), name) })
	labCmd := func(args ...string) (int, string, string) {
		t.Helper()
		return fwpush(t, append([]string{"lab", args[0], "--name", name}, args[1:]...)...)
	}

	code, out, errs := labCmd("up", site)
	if code != exitOK || !strings.Contains(out, "lab "+name+": up in ") || !strings.Contains(out, "controller 203.0.113.254, stranger 198.18.0.254") {
		t.Fatalf("lab up: code %d\n%s%s", code, out, errs)
	}

	code, out, errs = labCmd("status", site)
	if code != exitOK || !strings.Contains(out, "lab "+name+": up") || !strings.Contains(out, "fwp-"+name+".tunnel-1") || !strings.Contains(out, "memory: 6 processes") {
		t.Errorf("lab status: code %d\n%s%s", code, out, errs)
	}

	code, out, errs = labCmd("exec", site, "--", "sh", "-c", `echo "$FWPUSH_IDENTITY"; ssh -F "$(dirname "$FWPUSH_IDENTITY")/ssh_config" -J 203.0.113.10 198.18.0.31 hostname`)
	if code != exitOK || out != filepath.Join(lab.Root, name, "id_ed25519")+"\nmysql-1\n" {
		t.Errorf("lab exec: code %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, _ := labCmd("exec", site, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("lab exec of a command that exits 7: code %d", code)
	}

	code, out, errs = labCmd("shell", site, "mysql-1", "--", "sh", "-c", "hostname; iptables-save | grep -c -- '-A' || true")
	if code != exitOK || out != "mysql-1\n0\n" {
		t.Errorf("lab shell: code %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := labCmd("shell", site, "nosuch", "--", "true"); code != exitFailed || !strings.Contains(errs, `no host "nosuch"`) {
		t.Errorf("lab shell on an unknown host: code %d, stderr %q", code, errs)
	}

	for _, tc := range []struct{ from, addr, port, want string }{
		{"controller", "203.0.113.10", "22", "reachable"},
		{"stranger", "198.18.0.31", "3306", "reachable"},
		{"stranger", "203.0.113.10", "22", "filtered"},
	} {
		code, out, errs := labCmd("probe", site, tc.from, tc.addr, tc.port)
		if code != exitOK || out != tc.want+"\n" {
			t.Errorf("lab probe %s %s %s: code %d, stdout %q, stderr %q; want %s", tc.from, tc.addr, tc.port, code, out, errs, tc.want)
		}
	}

	// up again rebuilds; down twice is fine; a lab that is down says so.
	start := time.Now()
	if code, out, errs := labCmd("up", site); code != exitOK {
		t.Errorf("lab up on a lab that is up: code %d\n%s%s", code, out, errs)
	}
	t.Logf("rebuild took %s", time.Since(start))
	for range 2 {
		if code, out, errs := labCmd("down", site); code != exitOK || out != "lab "+name+": down\n" {
			t.Errorf("lab down: code %d, stdout %q, stderr %q", code, out, errs)
		}
	}
	if code, out, _ := labCmd("status", site); code != exitFailed || out != "lab "+name+": down\n" {
		t.Errorf("lab status when down: code %d, stdout %q", code, out)
	}
	if code, _, errs := labCmd("exec", site, "--", "true"); code != exitFailed || !strings.Contains(errs, "lab is not up: bring it up with: fwpush lab up --name "+name) {
		t.Errorf("lab exec when down: code %d, stderr %q", code, errs)
	}
}
