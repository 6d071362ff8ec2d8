package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// The sudo issue's "done when", on the cloud fleet: root's login off, the
// login user deploy becoming root with sudo.
func TestSudoInLab(t *testing.T) {
	t.Parallel()
	// The cases where sudo refuses or wants a password run on two hosts:
	// the tunnel, reached directly, and a host behind it. Every host of the
	// lab has the same sudo: the other four would fail the same way, at
	// the cost of their connections and sudo's. (The run that applies with
	// the password does not probe: the four, not pushed to, would not
	// filter what the check expects.)
	two, twoHosts := "tunnel-1,mysql-1", []string{"tunnel-1", "mysql-1"}
	// Each in a lab of its own, at once; each with its own copy of the
	// inventory (see example).
	t.Run("passwordless sudo: applied, persisted as root's, unchanged again, checked", func(t *testing.T) {
		t.Parallel()
		cloud := example(t, "cloud.toml")
		l := labtest.Start(t, cloud)
		if out := labtest.Shell(t, l, "mysql-1", "sh", "-c", "grep -c '^PermitRootLogin no' /etc/ssh/sshd_config $(ls /var/lib/fwpush-lab/*/hosts/mysql-1/sshd_config 2>/dev/null) 2>/dev/null | tail -n 1; id -u deploy"); strings.HasSuffix(strings.TrimSpace(out), "\n0") {
			t.Fatalf("deploy is root's uid:\n%s", out)
		}
		// Its probes are the check's below, which probes the whole matrix.
		code, out, _ := cli(t, l, "run", "--no-verify", cloud)
		if code != exitOK || !strings.Contains(out, "6 applied") {
			t.Fatalf("run as deploy with sudo: exit %d, want 0 and every host applied", code)
		}
		for _, h := range siteHosts {
			owners := labtest.Shell(t, l, h, "stat", "-c", "%U:%G %a %n", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6", "/var/lib/fwpush/applied")
			if strings.Count(owners, "root:root 644") != 3 {
				t.Errorf("%s: fwpush's files are not root's:\n%s", h, owners)
			}
		}
		if code, out, errs := cli(t, l, "run", "--quiet", cloud); code != exitOK || out != "" || errs != "" {
			t.Errorf("run --quiet again: exit %d, stdout %q, stderr %q; want 0 and silence", code, out, errs)
		}
		if code, _, _ := cli(t, l, "check", cloud); code != exitOK {
			t.Errorf("check as deploy: exit %d, want 0", code)
		}
	})

	t.Run("sudo with a password: FWPUSH_BECOME_PASS; none or a wrong one fails every host, nothing changed", func(t *testing.T) {
		t.Parallel()
		cloud := example(t, "cloud.toml")
		l := labtest.Start(t, cloud, lab.Options{Host: lab.HostOptions{Sudo: lab.SudoPassword, Password: "s3cret-pass"}})
		before := snapshot(t, l)
		for _, tc := range []struct {
			name string
			env  []string
			want string
		}{
			{"no password", nil, " wants a password for user deploy"},
			{"a wrong password", []string{"FWPUSH_BECOME_PASS=wrong"}, " refused the password of user deploy"},
		} {
			start := time.Now()
			code, out, _ := cliEnv(t, l, tc.env, "run", "--limit", two, cloud)
			if code != exitFailed || strings.Count(out, tc.want) != len(twoHosts) {
				t.Errorf("%s: exit %d, want 1 and every host failing with %q", tc.name, code, tc.want)
			}
			// A hang guard, not a measure: sudo's own words (above), not a
			// step's deadline, ended each host; this only proves the run
			// ends, should sudo wait for a password it is never given.
			if took := time.Since(start); took > 60*time.Second {
				t.Errorf("%s: took %s", tc.name, took)
			}
			sameSnapshot(t, tc.name, before, snapshot(t, l))
		}
		code, out, _ := cliEnv(t, l, []string{"FWPUSH_BECOME_PASS=s3cret-pass"}, "run", "--no-verify", "--limit", two, cloud)
		if code != exitOK || !strings.Contains(out, "2 applied") {
			t.Errorf("with the password: exit %d, want 0 and every host applied", code)
		}
		if strings.Contains(out, "s3cret") {
			t.Errorf("the password shows in the output")
		}
	})

	t.Run("no sudo rights: every host named, nothing changed", func(t *testing.T) {
		t.Parallel()
		cloud := example(t, "cloud.toml")
		l := labtest.Start(t, cloud, lab.Options{Host: lab.HostOptions{Sudo: lab.SudoNone, Password: "s3cret-pass"}})
		before := snapshot(t, l)
		// sudo asks a user it would refuse for a password all the same,
		// and says only that it wants one, or that it was wrong: fwpush
		// then asks sudo -n -v, which says the user has no rights.
		noRights := func(h string) string {
			return "error: host " + h + ": sudo: user deploy may not become root with sudo on host " + h
		}
		for _, tc := range []struct {
			env  []string
			want func(host string) string
		}{
			{nil, noRights},
			{[]string{"FWPUSH_BECOME_PASS=s3cret-pass"}, noRights},
			{[]string{"FWPUSH_BECOME_PASS=wrong"}, noRights},
		} {
			code, out, _ := cliEnv(t, l, tc.env, "run", "--limit", two, cloud)
			if code != exitFailed {
				t.Errorf("run: exit %d, want 1", code)
			}
			for _, h := range twoHosts {
				if !strings.Contains(out, tc.want(h)) {
					t.Errorf("%s is not named with the user and sudo: want %q", h, tc.want(h))
				}
			}
		}
		sameSnapshot(t, "a run without sudo rights", before, snapshot(t, l))
	})

	t.Run("requiretty: every host named with what to change, nothing changed", func(t *testing.T) {
		t.Parallel()
		cloud := example(t, "cloud.toml")
		l := labtest.Start(t, cloud, lab.Options{Host: lab.HostOptions{Files: map[string]string{"/etc/sudoers.d/tty": "Defaults:deploy requiretty\n"}}})
		before := snapshot(t, l)
		code, out, _ := cli(t, l, "run", "--limit", two, cloud)
		if code != exitFailed {
			t.Errorf("run: exit %d, want 1", code)
		}
		for _, h := range twoHosts {
			if want := "error: host " + h + ": sudo: sudo on host " + h + ` wants a terminal (Defaults requiretty in its sudoers), and fwpush asks for none: add "Defaults:deploy !requiretty"`; !strings.Contains(out, want) {
				t.Errorf("%s: want %q", h, want)
			}
		}
		sameSnapshot(t, "a run under requiretty", before, snapshot(t, l))
	})
}
