package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestInstallAndReboot is the lab issue's "done when" for packages and
// reboots: on a host that comes up without iptables-persistent, fwpush run
// installs it for real (from the lab's local repository, debconf's autosave
// off), loads the policy and persists it; lab reboot wipes the kernel's
// rules and the boot loads exactly the policy again, IPv4 and IPv6; a
// re-run then changes nothing. The runs are limited to that host, and the
// first one does not probe (the others, not pushed to, would not filter
// what the check expects): the others, which come up with
// iptables-persistent, would only repeat every other test's first run.
func TestInstallAndReboot(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml")
	l := labtest.Start(t, site, lab.Options{Hosts: map[string]lab.HostOptions{"mysql-1": {NoPersistent: true}}})
	const host = "mysql-1"
	installed := func() string {
		return labtest.Shell(t, l, host, "sh", "-c", "dpkg-query -W -f='${Package} ${Status}\n' iptables-persistent netfilter-persistent 2>/dev/null; command -v netfilter-persistent; true")
	}
	if out := installed(); strings.Contains(out, "install ok installed") || strings.Contains(out, "/netfilter-persistent") {
		t.Fatalf("%s came up with iptables-persistent:\n%s", host, out)
	}

	// dpkg's log is the machine's until the host writes to it.
	logged := strings.TrimSpace(labtest.Shell(t, l, host, "sh", "-c", "wc -l </var/log/dpkg.log || echo 0"))

	if code, _, _ := cli(t, l, "run", "--no-verify", "--limit", host, site); code != exitOK {
		t.Fatalf("run: exit %d", code)
	}
	if out := installed(); strings.Count(out, "install ok installed") != 2 {
		t.Errorf("after run, %s's packages:\n%s", host, out)
	}
	// The policy has sets: ipset-persistent comes with it, which loads
	// them at boot before the rules.
	if out := labtest.Shell(t, l, host, "sh", "-c", "dpkg-query -W -f='${Status}' ipset-persistent; echo; debconf-show ipset-persistent"); !strings.HasPrefix(out, "install ok installed\n") ||
		!strings.Contains(out, "ipset-persistent/autosave: false") {
		t.Errorf("after run, %s's ipset-persistent:\n%s", host, out)
	}
	if out := labtest.Shell(t, l, host, "sh", "-c", "tail -n +$(($1 + 1)) /var/log/dpkg.log | grep -c 'status installed iptables-persistent'; debconf-show iptables-persistent", "sh", logged); !strings.HasPrefix(out, "1\n") ||
		!strings.Contains(out, "iptables-persistent/autosave_v4: false") || !strings.Contains(out, "iptables-persistent/autosave_v6: false") {
		t.Errorf("%s: dpkg's log and debconf after the install:\n%s", host, out)
	}

	code, rendered, errs := fwpush(t, "render", "--host", host, site)
	v4, v6, ok := strings.Cut(rendered, "### "+host+".rules.v6\n")
	v6, _, sets := strings.Cut(v6, "### "+host+".ipsets\n")
	if code != exitOK || !ok || !sets {
		t.Fatalf("render: exit %d: %s", code, errs)
	}
	v4 = strings.TrimPrefix(v4, "### "+host+".rules.v4\n")
	want := map[string]string{"iptables-save": loaded(v4), "ip6tables-save": loaded(v6)}
	check := func(when string) {
		t.Helper()
		for save, policy := range want {
			if live := loaded(labtest.Shell(t, l, host, save)); live != policy {
				t.Errorf("%s, %s's %s:\n%s\nwant the policy:\n%s", when, host, save, live, policy)
			}
		}
		files := labtest.Shell(t, l, host, "cat", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6")
		if loaded(files) != want["iptables-save"]+want["ip6tables-save"] {
			t.Errorf("%s, %s's rules.v4 and rules.v6:\n%s", when, host, files)
		}
	}
	check("after run")

	// Rules of the moment that a reboot forgets, in both families and
	// beyond the filter table.
	labtest.Shell(t, l, host, "sh", "-ec", `
		iptables -I INPUT 1 -s 198.51.100.9/32 -j ACCEPT
		iptables -N stray
		iptables -A stray -j ACCEPT
		iptables -t nat -A POSTROUTING -s 198.51.100.9/32 -j RETURN
		ip6tables -I INPUT 1 -s 2001:db8::9/128 -j ACCEPT
		ip6tables -P INPUT ACCEPT`)
	code, out, errs := fwpush(t, "lab", "reboot", "--name", l.Name, site, host)
	if code != exitOK || !strings.Contains(out, "boot: netfilter-persistent start") || !strings.Contains(out, host+" rebooted in ") {
		t.Fatalf("lab reboot: exit %d\n%s%s", code, out, errs)
	}
	check("after the reboot")

	before := snapshot(t, l)
	if code, out, errs := cli(t, l, "run", "--quiet", "--limit", host, site); code != exitOK || out != "" {
		t.Errorf("run after the reboot: exit %d, stdout %q, stderr %q; want the host unchanged", code, out, errs)
	}
	sameSnapshot(t, "a run after the reboot", before, snapshot(t, l))
	if code, _, _ := cli(t, l, "run", "--check", "--limit", host, site); code != exitOK {
		t.Errorf("run --check after the reboot: exit %d, want 0", code)
	}
}

var counters = regexp.MustCompile(` \[[0-9]+:[0-9]+\]$`)

// loaded reduces iptables-save output (or a rules file) to what the kernel
// holds: tables with their chains, policies and rules, without comments or
// counters. A table with no rules, no chain of its own and every policy
// ACCEPT is left out: that is what a table the kernel never loaded looks
// like, and what a reboot leaves.
func loaded(save string) string {
	var out, table strings.Builder
	empty := true
	for line := range strings.Lines(save) {
		line = counters.ReplaceAllString(strings.TrimRight(line, "\n"), "")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			table.Reset()
			empty = true
			table.WriteString(line + "\n")
		case line == "COMMIT":
			if !empty {
				out.WriteString(table.String() + "COMMIT\n")
			}
		default:
			table.WriteString(line + "\n")
			if strings.HasPrefix(line, "-") || strings.HasPrefix(line, ":") && !strings.HasSuffix(line, " ACCEPT") {
				empty = false
			}
		}
	}
	return out.String()
}
