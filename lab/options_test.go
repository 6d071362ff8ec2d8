package lab

import (
	"encoding/binary"
	"strconv"
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
					if diff := cmp.Diff(tc.opts.For(n.Name), n.Options); diff != "" {
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

func TestPlanAccounts(t *testing.T) {
	acc, err := planAccounts([]string{"root", "fwplab-a", "", "fwplab-b", "fwplab-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := acc.users["root"]; ok || len(acc.users) != 2 {
		t.Fatalf("users %v, want fwplab-a and fwplab-b", acc.users)
	}
	a, b := acc.users["fwplab-a"], acc.users["fwplab-b"]
	if a.uid < firstUID || a.uid != a.gid || b.uid == a.uid || a.home != "/home/fwplab-a" || a.machine || !acc.newUsers() {
		t.Errorf("new users: %+v, %+v", a, b)
	}
	// The uids are free on the machine, and the users are in every file,
	// with no password and no lock (sshd refuses keys to a locked account).
	machine := must(planAccounts(nil))
	for _, e := range entries(machine.passwd) {
		if e[2] == strconv.Itoa(a.uid) || e[2] == strconv.Itoa(b.uid) {
			t.Errorf("uid %s is the machine's %s", e[2], e[0])
		}
	}
	for file, want := range map[string]string{
		"passwd": "fwplab-a:x:" + strconv.Itoa(a.uid) + ":" + strconv.Itoa(a.gid) + ":fwpush lab:/home/fwplab-a:",
		"group":  "fwplab-b:x:" + strconv.Itoa(b.gid) + ":\n",
		"shadow": "fwplab-a:*:",
	} {
		data := map[string][]byte{"passwd": acc.passwd, "group": acc.group, "shadow": acc.shadow}[file]
		if !strings.Contains(string(data), want) || !strings.HasPrefix(string(data), string(map[string][]byte{"passwd": machine.passwd, "group": machine.group, "shadow": machine.shadow}[file])) {
			t.Errorf("%s: want the machine's entries, then %q:\n%s", file, want, data)
		}
	}
	// A user the machine has keeps its entry.
	acc = must(planAccounts([]string{"daemon"}))
	if d := acc.users["daemon"]; !d.machine || d.uid != 1 || acc.newUsers() {
		t.Errorf("daemon: %+v", d)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSudoers(t *testing.T) {
	for s, want := range map[Sudo]string{
		SudoNopasswd: "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n",
		SudoPassword: "deploy ALL=(ALL:ALL) ALL\n",
		SudoNone:     "",
	} {
		if got := sudoersFor("deploy", s); !strings.HasSuffix(got, want) || (want == "") != (got == "") {
			t.Errorf("sudoers for %s: %q, want %q", s, got, want)
		}
	}
}

// TestUtmp decodes the record as glibc's struct utmp lays it out.
func TestUtmp(t *testing.T) {
	rec := utmp()
	if len(rec) != 384 {
		t.Fatalf("utmp record of %d bytes, want 384", len(rec))
	}
	typ := binary.LittleEndian.Uint16(rec[0:])
	pid := binary.LittleEndian.Uint32(rec[4:])
	user := strings.TrimRight(string(rec[44:76]), "\x00")
	if typ != 1 || byte(pid) != '2' || byte(pid>>8) != 'N' || user != "runlevel" {
		t.Errorf("utmp: type %d, runlevel %q, previous %q, user %q", typ, byte(pid), byte(pid>>8), user)
	}
}
