package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// fwpush runs the real CLI in-process.
func fwpush(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	code, out, errs := fwpush(t, "validate", "../../examples/site.toml")
	if code != exitOK || !strings.Contains(out, "valid: 6 hosts, 4 roles") {
		t.Fatalf("validate example: code %d, stdout %q, stderr %q", code, out, errs)
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	src := "[ssh]\ntunnel = \"t\"\n[hosts.t]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.300\"\n[roles.tunnel]\ntemplate = \"tunnel\"\npublic_tcp = [22]\nlog_droped = true\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = fwpush(t, "validate", bad)
	if code != exitInvalid {
		t.Errorf("validate bad: code %d, want %d", code, exitInvalid)
	}
	for _, want := range []string{
		bad + `:5: hosts.t.public_ip: "203.0.113.300" is not an IP address`,
		bad + `:9: roles.tunnel.log_droped: unknown key "log_droped" in [roles.tunnel]; did you mean "log_dropped"?`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestValidateReportsLockout(t *testing.T) {
	dir := t.TempDir()
	tmpl := "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
	inv := "[ssh]\ntunnel = \"t\"\n[hosts.t]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.1\"\nprivate_ip = \"198.18.0.1\"\n" +
		"[hosts.d]\nrole = \"db\"\nprivate_ip = \"198.18.0.2\"\n[roles.tunnel]\ntemplate = \"tunnel\"\npublic_tcp = [22]\n[roles.db]\ntemplate = \"closed.tmpl\"\n"
	for name, body := range map[string]string{"closed.tmpl": tmpl, "site.toml": inv} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	site := filepath.Join(dir, "site.toml")
	code, _, errs := fwpush(t, "validate", site)
	want := site + ":14: roles.db.template: host d: lockout: the IPv4 policy does not accept SSH from the tunnel (198.18.0.1) to 198.18.0.2:22 on eth1 without conntrack (INPUT chain: drop): fwpush would lock itself out\n"
	if code != exitInvalid || errs != want {
		t.Errorf("code %d, stderr:\n%s\nwant:\n%s", code, errs, want)
	}
}

func TestRender(t *testing.T) {
	code, out, errs := fwpush(t, "render", "--host", "mysql-1", "../../examples/site.toml")
	if code != exitOK {
		t.Fatalf("render: code %d: %s", code, errs)
	}
	golden, err := os.ReadFile("../../roles/testdata/site-sets/mysql-1.rules.v4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "### mysql-1.rules.v4\n"+string(golden)) || strings.Contains(out, "haproxy") {
		t.Errorf("render --host mysql-1 printed:\n%s", out)
	}

	dir := t.TempDir()
	if code, _, errs := fwpush(t, "render", "--out", dir, "../../examples/site.toml"); code != exitOK {
		t.Fatalf("render --out: code %d: %s", code, errs)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rules.v*"))
	if len(files) != 12 {
		t.Errorf("render --out wrote %d files, want 12: %v", len(files), files)
	}

	if code, _, errs := fwpush(t, "render", "--host", "nope", "../../examples/site.toml"); code != exitInvalid || !strings.Contains(errs, "--host nope: no such host") {
		t.Errorf("render --host nope: code %d: %s", code, errs)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, exitOK, "fwpush dev"},
		{[]string{"validate"}, exitInvalid, ""},
		{[]string{"render", "--bogus", "x.toml"}, exitInvalid, ""},
		{[]string{"validate", "/nonexistent/site.toml"}, exitInvalid, ""},
	}
	for _, tt := range tests {
		code, out, errs := fwpush(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) {
			t.Errorf("fwpush %v: code %d (want %d), stdout %q, stderr %q", tt.args, code, tt.code, out, errs)
		}
	}
	// Every command's --help shows an example.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.Example == "" {
				t.Errorf("%s has no example in its --help", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRootCmd(nil, nil))
}
