package lab

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
)

func TestOptionsFor(t *testing.T) {
	o := Options{
		Host: HostOptions{Sudo: SudoPassword, Password: "all", Packages: []string{"ufw"}, Files: map[string]string{"/etc/a": "host", "/etc/b": "host"}},
		Hosts: map[string]HostOptions{
			"mysql-1": {NoPersistent: true, Sudo: SudoNone, Packages: []string{"nftables", "ufw"}, Files: map[string]string{"/etc/a": "mysql-1"}},
			"mysql-2": {NoRootLogin: true, Password: "two"},
		},
	}
	for _, tc := range []struct {
		host string
		want HostOptions
	}{
		{"tunnel-1", o.Host},
		{"mysql-1", HostOptions{NoPersistent: true, Sudo: SudoNone, Password: "all", Packages: []string{"ufw", "nftables"}, Files: map[string]string{"/etc/a": "mysql-1", "/etc/b": "host"}}},
		{"mysql-2", HostOptions{NoRootLogin: true, Sudo: SudoPassword, Password: "two", Packages: []string{"ufw"}, Files: map[string]string{"/etc/a": "host", "/etc/b": "host"}}},
	} {
		if diff := cmp.Diff(tc.want, o.For(tc.host)); diff != "" {
			t.Errorf("options of %s (-want +got):\n%s", tc.host, diff)
		}
	}
	// For gives copies: changing one host's never changes another's.
	m := o.For("mysql-1")
	m.Packages[0], m.Files["/etc/b"] = "changed", "changed"
	if o.Host.Packages[0] != "ufw" || o.Host.Files["/etc/b"] != "host" {
		t.Errorf("For shares its slices and maps with Options.Host: %+v", o.Host)
	}
}

func TestParseSudo(t *testing.T) {
	for in, want := range map[string]Sudo{"": SudoNopasswd, "nopasswd": SudoNopasswd, "password": SudoPassword, "none": SudoNone} {
		if got, err := ParseSudo(in); err != nil || got != want {
			t.Errorf("ParseSudo(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseSudo("NOPASSWD"); err == nil {
		t.Error("ParseSudo accepted NOPASSWD")
	}
}

func TestNewRefusesOptions(t *testing.T) {
	deploy := func(inv *inventory.Inventory) {
		for _, h := range inv.Hosts {
			h.User = "deploy"
		}
	}
	for _, tc := range []struct {
		name   string
		users  func(*inventory.Inventory)
		opts   Options
		want   string
		wantOK bool
	}{
		{"root login off for root", nil, Options{Host: HostOptions{NoRootLogin: true}}, "host mysql-1: root login is off and the login user is root", false},
		{"root login off for deploy", deploy, Options{Host: HostOptions{NoRootLogin: true}}, "", true},
		{"sudo password without one", deploy, Options{Hosts: map[string]HostOptions{"mysql-2": {Sudo: SudoPassword}}}, "host mysql-2: sudo asks for a password and the login user has none", false},
		{"sudo password", deploy, Options{Host: HostOptions{Sudo: SudoPassword, Password: "s3cret"}}, "", true},
		{"unknown sudo", nil, Options{Host: HostOptions{Sudo: "always"}}, `sudo "always": want nopasswd, password or none`, false},
		{"password chpasswd cannot take", deploy, Options{Host: HostOptions{Password: "a:b"}}, "holds ':' or a newline", false},
		{"unknown host", nil, Options{Hosts: map[string]HostOptions{"mysql-9": {NoPersistent: true}}}, `options for host "mysql-9": the inventory has no such host`, false},
		{"package name", nil, Options{Hosts: map[string]HostOptions{"mysql-1": {Packages: []string{"ufw; rm -rf /"}}}}, `host mysql-1: package "ufw; rm -rf /": not a Debian package name`, false},
		{"relative file", nil, Options{Host: HostOptions{Files: map[string]string{"etc/x": ""}}}, `file "etc/x": want an absolute, clean path`, false},
		{"unclean file", nil, Options{Host: HostOptions{Files: map[string]string{"/etc/../x": ""}}}, `file "/etc/../x": want an absolute, clean path`, false},
		{"file under a mount", nil, Options{Host: HostOptions{Files: map[string]string{"/run/x": ""}}}, `file "/run/x": the lab mounts over`, false},
		{"file under the lab", nil, Options{Host: HostOptions{Files: map[string]string{Root + "/x": ""}}}, "the lab mounts over", false},
		{"files and packages", nil, Options{Host: HostOptions{Packages: []string{"ufw", "nftables"}, Files: map[string]string{"/etc/nftables.conf": "", "/etc/firewalld/firewalld.conf": ""}}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := loadSite(t)
			if tc.users != nil {
				tc.users(inv)
			}
			l, err := New(inv, "ok", tc.opts)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				for _, n := range l.Hosts {
					want := tc.opts.For(n.Name)
					// A login user other than root: root's login is off,
					// as on cloud images.
					want.NoRootLogin = want.NoRootLogin || n.User != "root"
					if diff := cmp.Diff(want, n.Options); diff != "" {
						t.Errorf("%s's options (-want +got):\n%s", n.Name, diff)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}
