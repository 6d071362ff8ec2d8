package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// othersScript makes, on a lab host, what Docker and fail2ban leave in its
// filter table: their chains and rules (a ban), and their jumps at the top
// of FORWARD and INPUT, where they insert them.
const othersScript = `
iptables -N DOCKER
iptables -N DOCKER-ISOLATION-STAGE-1
iptables -N DOCKER-ISOLATION-STAGE-2
iptables -N DOCKER-USER
iptables -A DOCKER -d 198.18.17.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
iptables -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
iptables -A DOCKER-ISOLATION-STAGE-1 -j RETURN
iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
iptables -A DOCKER-ISOLATION-STAGE-2 -j RETURN
iptables -A DOCKER-USER -j RETURN
iptables -I FORWARD 1 -o docker0 -j DOCKER
iptables -I FORWARD 1 -j DOCKER-ISOLATION-STAGE-1
iptables -I FORWARD 1 -j DOCKER-USER
iptables -N f2b-sshd
iptables -A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable
iptables -A f2b-sshd -j RETURN
iptables -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd
`

// liveRules is a host's IPv4 filter table as iptables-save prints it,
// without comments and packet counters.
func liveRules(t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	return labtest.Shell(t, l, host, "sh", "-c", "iptables-save -t filter | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'")
}

// othersLines are the lines of a table that belong to Docker or fail2ban:
// their chains, their rules and the jumps into them, in order.
func othersLines(table string) []string {
	var out []string
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "DOCKER") || strings.Contains(line, "f2b-") {
			out = append(out, line)
		}
	}
	return out
}

// chainRules are the rules of one chain, in order.
func chainRules(table, chain string) []string {
	var out []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "-A "+chain+" ") {
			out = append(out, line)
		}
	}
	return out
}

// TestOwnershipInLab is the acceptance of owning the filter table, on
// real sshd and real iptables, in one lab of the example fleet whose app
// role preserves Docker's and fail2ban's chains:
//
//   - wordpress-1 (app) has Docker's and fail2ban's chains: applied around
//     them, which stay byte for byte and in place; a later ban is no drift;
//     rules.v4 holds none of it; fwpush check passes beside them;
//   - mysql-1 (db, which preserves nothing) has the same chains: refused,
//     unchanged, named with the preserve line that would keep them;
//   - mysql-2 has a backdoor chain: --dry-run exits 2 naming it, run
//     refuses, run --force-own removes it;
//   - wordpress-2 has rules in the legacy backend too: refused, saying so;
//   - haproxy-www has ufw and the nftables service enabled: refused, saying
//     how to disable them;
//   - the tunnel is applied all along.
func TestOwnershipInLab(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(t.TempDir(), "site.toml")
	body := strings.Replace(string(src), "log_dropped = true\n", "log_dropped = true\npreserve = [\"DOCKER*\", \"f2b-*\"]\n", 1)
	if body == string(src) {
		t.Fatal("examples/site.toml has no log_dropped line in [roles.app] to add preserve after")
	}
	if err := os.WriteFile(site, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, site)

	for _, h := range []string{"wordpress-1", "mysql-1"} {
		labtest.Shell(t, l, h, "sh", "-ec", othersScript)
	}
	labtest.Shell(t, l, "mysql-2", "sh", "-ec", "iptables -N backdoor; iptables -A backdoor -j ACCEPT; iptables -I INPUT 1 -j backdoor")
	// Rules in the legacy backend next to the nf_tables one this machine's
	// iptables uses (or the other way round).
	other := "iptables-legacy"
	if strings.Contains(labtest.Shell(t, l, "wordpress-2", "iptables", "-V"), "legacy") {
		other = "iptables-nft"
	}
	labtest.Shell(t, l, "wordpress-2", other, "-A", "INPUT", "-s", "198.51.100.9/32", "-j", "DROP")
	// ufw and the nftables service enabled, in haproxy-www's own root
	// filesystem.
	managers := fakeManagers(t, l, "haproxy-www")

	before := snapshot(t, l)
	delete(before, "wordpress-1")
	delete(before, "tunnel-1")
	othersBefore := othersLines(liveRules(t, l, "wordpress-1"))
	if len(othersBefore) != 17 {
		t.Fatalf("wordpress-1 has %d lines of Docker and fail2ban, want 17:\n%s", len(othersBefore), strings.Join(othersBefore, "\n"))
	}

	t.Run("--dry-run reports an unknown chain as drift, naming it", func(t *testing.T) {
		code, out, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--limit", "mysql-2", site)
		if code != exitChanges || !strings.Contains(out, "mysql-2") || !strings.Contains(out, "unknown chains: backdoor") {
			t.Errorf("--dry-run --no-diff: exit %d, want %d naming backdoor", code, exitChanges)
		}
		code, out, _ = cli(t, l, "run", "--dry-run", "--limit", "mysql-2", site)
		if code != exitChanges || !strings.Contains(out, "\n-:backdoor -\n") || !strings.Contains(out, "\n--A INPUT -j backdoor\n") {
			t.Errorf("--dry-run: exit %d, want %d and a diff removing backdoor", code, exitChanges)
		}
	})

	code, out, _ := cli(t, l, "run", "--no-verify", site)
	if code != exitFailed {
		t.Errorf("run: exit %d, want %d", code, exitFailed)
	}
	for _, want := range []string{
		"host mysql-1: unknown chains: DOCKER, DOCKER-ISOLATION-STAGE-1, DOCKER-ISOLATION-STAGE-2, DOCKER-USER, f2b-sshd: the policy does not declare them and no preserve pattern keeps them, " +
			`and fwpush removes nothing it does not know; keep them with preserve = ["DOCKER*", "f2b-*"] in [roles.db] of ` + site + ", or remove them with --force-own",
		"host mysql-2: unknown chains: backdoor: ",
		`keep it with preserve = ["backdoor"] in [roles.db] of ` + site,
		"host wordpress-2: backends: iptables here uses nf_tables, but the legacy backend holds filter rules too (IPv4: 1 rule)",
		"2 applied, 4 failed",
	} {
		if other == "iptables-nft" {
			want = strings.NewReplacer("uses nf_tables", "uses legacy", "the legacy backend", "the nf_tables backend").Replace(want)
		}
		if !strings.Contains(out, want) {
			t.Errorf("run output lacks %q", want)
		}
	}
	for _, m := range managers {
		if !strings.Contains(out, m) {
			t.Errorf("run output lacks %q", m)
		}
	}
	after := snapshot(t, l)
	for h, b := range before {
		if after[h] != b {
			t.Errorf("run changed %s, which it refused:\nbefore:\n%s\nafter:\n%s", h, b, after[h])
		}
	}

	t.Run("preserved chains, rules and jumps stay, byte for byte and in place", func(t *testing.T) {
		live := liveRules(t, l, "wordpress-1")
		if got := othersLines(live); strings.Join(got, "\n") != strings.Join(othersBefore, "\n") {
			t.Errorf("Docker's and fail2ban's lines changed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(othersBefore, "\n"))
		}
		if in := chainRules(live, "INPUT"); len(in) < 2 || in[0] != "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd" ||
			in[1] != "-A INPUT -i lo -j ACCEPT" {
			t.Errorf("INPUT does not start with fail2ban's jump, then the policy:\n%s", strings.Join(in, "\n"))
		}
		if fw := chainRules(live, "FORWARD"); len(fw) != 3 || fw[0] != "-A FORWARD -j DOCKER-USER" || fw[2] != "-A FORWARD -o docker0 -j DOCKER" {
			t.Errorf("FORWARD is not Docker's three jumps:\n%s", strings.Join(fw, "\n"))
		}
		if !strings.Contains(live, ":INPUT DROP\n") || !strings.Contains(live, "-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT\n") {
			t.Errorf("the policy is not applied:\n%s", live)
		}
		files := labtest.Shell(t, l, "wordpress-1", "cat", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6")
		if strings.Contains(files, "DOCKER") || strings.Contains(files, "f2b") || !strings.Contains(files, "# fwpush policy for wordpress-1") {
			t.Errorf("rules.v4 and rules.v6 are not the policy alone:\n%s", files)
		}
		// fail2ban bans someone else: not drift.
		labtest.Shell(t, l, "wordpress-1", "iptables", "-I", "f2b-sshd", "1", "-s", "198.51.100.67/32", "-j", "REJECT")
		if code, out, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--limit", "wordpress-1", site); code != exitOK || !strings.Contains(out, "unchanged") {
			t.Errorf("a new ban: exit %d, want 0 and unchanged", code)
		}
	})

	t.Run("run --force-own removes the backdoor", func(t *testing.T) {
		code, out, _ := cli(t, l, "run", "--no-verify", "--force-own", "--limit", "mysql-2", site)
		if code != exitOK || !strings.Contains(out, "applied") {
			t.Fatalf("run --force-own: exit %d, want 0 and applied", code)
		}
		if live := liveRules(t, l, "mysql-2"); strings.Contains(live, "backdoor") {
			t.Errorf("the backdoor survived:\n%s", live)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--no-diff", "--limit", "mysql-2", site); code != exitOK {
			t.Errorf("after --force-own: exit %d, want 0: the host matches the policy", code)
		}
	})

	t.Run("the fleet taken over: fwpush check passes beside the preserved chains", func(t *testing.T) {
		labtest.Shell(t, l, "wordpress-2", other, "-F", "INPUT")
		code, out, _ := cli(t, l, "run", "--force-own", site)
		if code != exitOK || !strings.Contains(out, "all as expected") {
			t.Errorf("run --force-own: exit %d, want 0 and its check all as expected", code)
		}
		if code, out, _ := cli(t, l, "check", site); code != exitOK || !strings.Contains(out, "all as expected") {
			t.Errorf("check: exit %d, want 0 and all as expected", code)
		}
		if got := othersLines(liveRules(t, l, "wordpress-1")); len(got) != 18 {
			t.Errorf("wordpress-1 lost Docker's or fail2ban's lines:\n%s", strings.Join(got, "\n"))
		}
		if live := liveRules(t, l, "mysql-1"); strings.Contains(live, "DOCKER") || strings.Contains(live, "f2b") {
			t.Errorf("--force-own left mysql-1's unknown chains:\n%s", live)
		}
	})
}

// fakeManagers enables ufw and the nftables service on a lab host the way
// their packages and systemctl enable do: ENABLED=yes in ufw.conf, and a
// unit with its symlink in a .wants directory. The files go to the host's
// own root filesystem; the machine's /etc never changes. It returns what a
// refused run must say.
func fakeManagers(t *testing.T, l *lab.Lab, host string) []string {
	t.Helper()
	labtest.Shell(t, l, host, "sh", "-ec", `mkdir -p /etc/ufw /etc/systemd/system/sysinit.target.wants
echo ENABLED=yes > /etc/ufw/ufw.conf
cd /etc/systemd/system; : > nftables.service; ln -s ../nftables.service sysinit.target.wants/nftables.service`)
	for _, f := range []string{"/etc/ufw/ufw.conf", "/etc/systemd/system/nftables.service"} {
		if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s exists on the machine: %s's files reached beyond its own root filesystem (%v)", f, host, err)
		}
	}
	return []string{
		"host " + host + ": other firewall: ufw is ENABLED=yes in /etc/ufw/ufw.conf: it loads its own rules at boot and at every ufw reload, over the policy; disable it with `ufw disable`",
		"nftables is enabled (/etc/systemd/system/sysinit.target.wants/nftables.service): at boot it loads /etc/nftables.conf",
	}
}
