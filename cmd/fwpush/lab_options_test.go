package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

func TestLabUpFlags(t *testing.T) {
	inv, err := inventory.Load("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nftables.conf")
	if err := os.WriteFile(conf, []byte("flush ruleset\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want lab.Options
		err  string
	}{
		{"none", nil, lab.Options{Hosts: map[string]lab.HostOptions{}}, ""},
		{"every host", []string{"--no-root-login", "--no-persistent", "--sudo", "password", "--password", "s3cret", "--package", "ufw"},
			lab.Options{Host: lab.HostOptions{NoRootLogin: true, NoPersistent: true, Sudo: lab.SudoPassword, Password: "s3cret", Packages: []string{"ufw"}}, Hosts: map[string]lab.HostOptions{}}, ""},
		{"some hosts", []string{"--no-persistent=mysql-1,mysql-2", "--sudo", "mysql-2=none", "--package", "mysql-1=ufw", "--package", "mysql-1=nftables", "--file", "mysql-1=/etc/nftables.conf=" + conf},
			lab.Options{Hosts: map[string]lab.HostOptions{
				"mysql-1": {NoPersistent: true, Packages: []string{"ufw", "nftables"}, Files: map[string]string{"/etc/nftables.conf": "flush ruleset\n"}},
				"mysql-2": {NoPersistent: true, Sudo: lab.SudoNone},
			}}, ""},
		// A value is a host's only when what comes before '=' names one.
		{"password with '='", []string{"--password", "mysql-1=a=b", "--password", "x=y"},
			lab.Options{Host: lab.HostOptions{Password: "x=y"}, Hosts: map[string]lab.HostOptions{"mysql-1": {Password: "a=b"}}}, ""},
		{"unknown host", []string{"--no-persistent=mysql-9"}, lab.Options{}, `--no-persistent: the inventory has no host "mysql-9"`},
		{"unknown sudo", []string{"--sudo", "mysql-1=always"}, lab.Options{}, `--sudo mysql-1=always: sudo "always"`},
		{"file without a local file", []string{"--file", "/etc/nftables.conf"}, lab.Options{}, "want PATH=LOCAL"},
		{"missing local file", []string{"--file", "/etc/x=/nonexistent/x"}, lab.Options{}, "/nonexistent/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f labUpFlags
			cmd := &cobra.Command{}
			f.register(cmd)
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, err := f.options(inv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("options: %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLabUpRefuses(t *testing.T) {
	site := "../../examples/site.toml"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "up", "--no-root-login", site}, "root login is off and the login user is root"},
		{[]string{"lab", "up", "--sudo", "password", "--no-persistent=nosuch", site}, `the inventory has no host "nosuch"`},
		{[]string{"lab", "up", "--package", "mysql-1=Bad_Name", site}, `package "Bad_Name": not a Debian package name`},
		{[]string{"lab", "reboot", site}, "takes INVENTORY HOST, got 1 arguments"},
	} {
		code, _, errs := fwpush(t, tc.args...)
		if code != exitInvalid || !strings.Contains(errs, tc.want) {
			t.Errorf("fwpush %s: code %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, errs, exitInvalid, tc.want)
		}
	}
}
