package main

import (
	"strings"
	"testing"
)

// TestAnsibleHabits: -l is --limit; --list-hosts prints what a --limit
// selects and stops, contacting nothing (the example's tunnel does not
// exist: a test that dialled it would wait for its timeout); a term that
// matches nothing names the name it is likely a typo of.
func TestAnsibleHabits(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"run", "-l", "mysql-*,!mysql-2", "--list-hosts", exampleSite}, exitOK, "  hosts (1):\n    mysql-1\n", ""},
		{[]string{"check", "--list-hosts", "--limit", "db,lb", exampleSite}, exitOK, "  hosts (3):\n    haproxy-www\n    mysql-1\n    mysql-2\n", ""},
		{[]string{"run", "--list-hosts", exampleSite}, exitOK, "  hosts (6):\n    haproxy-www\n    mysql-1\n    mysql-2\n    tunnel-1\n    wordpress-1\n    wordpress-2\n", ""},
		{[]string{"check", "-l", "!east", "--list-hosts", "../../examples/sites.toml"}, exitOK, "  hosts (3):\n    bastion-w1\n    db-1\n    db-2\n", ""},
		{[]string{"run", "-l", "mysq-2", "--list-hosts", exampleSite}, exitInvalid, "",
			"fwpush: --limit mysq-2: \"mysq-2\" matches no host or role; did you mean \"mysql-2\"?\n"},
		{[]string{"run", "--limit", "mysql-*,!mysq-2", exampleSite}, exitInvalid, "",
			"fwpush: --limit mysql-*,!mysq-2: \"!mysq-2\" matches no host or role; did you mean \"!mysql-2\"?\n"},
		{[]string{"check", "-l", "dbb", exampleSite}, exitInvalid, "",
			"fwpush: --limit dbb: \"dbb\" matches no host or role; did you mean \"db\"?\n"},
	}
	for _, tt := range tests {
		code, out, errs := fwpush(t, tt.args...)
		if code != tt.code || out != tt.stdout || errs != tt.stderr {
			t.Errorf("fwpush %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr %q", tt.args, code, out, errs, tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestErrorsOfMeaning: a command line of the right shape whose values are
// wrong says what is wrong, without pointing to --help, which would not
// help; one of the wrong shape points to it.
func TestErrorsOfMeaning(t *testing.T) {
	const help = "Run 'fwpush --help' for usage."
	tests := []struct {
		args []string
		help bool
	}{
		{[]string{"run", "--limit", "nope", exampleSite}, false},
		{[]string{"run", "--via", "mysql-1", exampleSite}, false},
		{[]string{"check", "--via", "nope", exampleSite}, false},
		{[]string{"render", "--host", "nope", exampleSite}, false},
		{[]string{"run", "--timeout", "1h", exampleSite}, false},
		{[]string{"run", "--ssh-config", "/nonexistent/ssh_config", exampleSite}, false},
		{[]string{"run", "--bogus", exampleSite}, true},
		{[]string{"run"}, true},
		{[]string{"run", exampleSite, exampleSite}, true},
	}
	for _, tt := range tests {
		code, out, errs := fwpush(t, tt.args...)
		if code != exitInvalid || out != "" || strings.Contains(errs, help) != tt.help || !strings.HasPrefix(errs, "fwpush: ") {
			t.Errorf("fwpush %q: exit %d, stdout %q, stderr %q; want exit 3 and the pointer to --help: %v", tt.args, code, out, errs, tt.help)
		}
	}
}
