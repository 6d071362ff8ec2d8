package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab/labtest"
)

// foreignScript makes, on a lab host, a table of someone else's (Docker's
// or firewalld's, say): a base chain at the input hook with a rule.
const foreignScript = `nft add table ip other
nft add chain ip other input '{ type filter hook input priority 0; policy accept; }'
nft add rule ip other input tcp dport 9999 drop
nft add chain ip other mine
nft add rule ip other mine udp dport 9998 drop`

// TestNFTablesInLab is the acceptance of the nftables backend on real sshd
// and a real kernel, in a lab of examples/mixed.toml, a fleet on both
// backends (haproxy-www, wordpress-1 and the databases on nftables, the
// others on iptables):
//
//   - one run pushes them all and check passes; a second run finds every
//     host unchanged;
//   - mysql-1 has a foreign table, left byte for byte as it was through
//     every run; mysql-2 a table whose base chain drops at the forward
//     hook: warned of;
//   - fwpush's table is the only thing fwpush writes on an nftables host:
//     not the filter table, not /etc/nftables.conf;
//   - a rule added by hand to table inet fwpush is drift, shown by
//     --dry-run and repaired;
//   - a reboot loads exactly fwpush's table, and the host is unchanged;
//   - wordpress-2 moves to nftables and back: its old backend's rules and
//     files go in the same run, check passes each time.
func TestNFTablesInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "mixed.toml")
	l := labtest.Start(t, site)
	labtest.Shell(t, l, "mysql-1", "sh", "-ec", foreignScript)
	foreign := func() string { return labtest.Shell(t, l, "mysql-1", "nft", "list", "table", "ip", "other") }
	before := foreign()
	labtest.Shell(t, l, "mysql-2", "sh", "-ec", `nft add table ip dropper
nft add chain ip dropper gate '{ type filter hook forward priority 0; policy drop; }'`)
	confBefore := labtest.Shell(t, l, "mysql-1", "sh", "-c", "cat /etc/nftables.conf 2>/dev/null; true")

	code, out, _ := cli(t, l, "run", "--json", site)
	var doc struct {
		Hosts []struct {
			Host, Status, Backend string
			Warnings              []string
		}
		Check *struct {
			ExitCode int `json:"exit_code"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("run --json: %v", err)
	}
	if code != exitOK || doc.Check == nil || doc.Check.ExitCode != exitOK {
		t.Fatalf("run: exit %d, check %+v; want 0 and check passing", code, doc.Check)
	}
	for _, h := range doc.Hosts {
		if h.Status != "applied" {
			t.Errorf("%s: %s, want applied", h.Host, h.Status)
		}
		if nft := h.Host != "tunnel-1" && h.Host != "wordpress-2"; nft != (h.Backend == "nftables") || h.Backend == "" {
			t.Errorf("%s: backend %q, want nftables on the hosts of that backend and iptables' own on the others", h.Host, h.Backend)
		}
		want := 0
		if h.Host == "mysql-2" {
			want = 1
			if len(h.Warnings) == 1 && !strings.HasPrefix(h.Warnings[0], "table ip dropper: base chain gate drops at the forward hook") {
				t.Errorf("mysql-2's warning: %q", h.Warnings[0])
			}
		}
		if len(h.Warnings) != want {
			t.Errorf("%s: warnings %q, want %d", h.Host, h.Warnings, want)
		}
	}
	if code, _, _ := cli(t, l, "check", site); code != exitOK {
		t.Errorf("check: exit %d, want 0", code)
	}
	if code, out, _ := cli(t, l, "run", "--dry-run", site); code != exitOK || strings.Count(out, "unchanged") < 6 ||
		!strings.Contains(out, "warning: host mysql-2: table ip dropper: base chain gate drops at the forward hook") {
		t.Errorf("a second run: exit %d, want 0, every host unchanged, and mysql-2's warning", code)
	}

	t.Run("the history of an nftables host", func(t *testing.T) {
		// The run applied, the dry run after it changed nothing: one line.
		lines := strings.Split(strings.TrimSpace(labtest.Shell(t, l, "mysql-1", "cat", "/var/lib/fwpush/history")), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], `"outcome":"applied"`) || !strings.Contains(lines[0], `"host":"mysql-1"`) {
			t.Errorf("mysql-1's history: %q, want one line, applied", lines)
		}
	})

	t.Run("fwpush's table, its files, and nothing else", func(t *testing.T) {
		table := labtest.Shell(t, l, "mysql-1", "nft", "list", "table", "inet", "fwpush")
		for _, want := range []string{"type filter hook input priority filter; policy drop;", "tcp dport 3306", "set fwp-"} {
			if !strings.Contains(table, want) {
				t.Errorf("table inet fwpush lacks %q:\n%s", want, table)
			}
		}
		if got := foreign(); got != before {
			t.Errorf("the foreign table changed:\n%s\nwant:\n%s", got, before)
		}
		if filter := labtest.Shell(t, l, "mysql-1", "sh", "-c", "iptables-save -t filter; ip6tables-save -t filter"); strings.Contains(filter, "-A ") || strings.Contains(filter, "DROP") {
			t.Errorf("the filter table of an nftables host was written:\n%s", filter)
		}
		files := labtest.Shell(t, l, "mysql-1", "sh", "-c", "cat /etc/fwpush/fwpush.nft; readlink /etc/systemd/system/sysinit.target.wants/fwpush-nftables.service; ls /etc/iptables 2>/dev/null; true")
		if !strings.Contains(files, "# fwpush policy for mysql-1") || !strings.Contains(files, "../fwpush-nftables.service") || strings.Contains(files, "rules.v4") {
			t.Errorf("fwpush's files on mysql-1:\n%s", files)
		}
		if conf := labtest.Shell(t, l, "mysql-1", "sh", "-c", "cat /etc/nftables.conf 2>/dev/null; true"); conf != confBefore {
			t.Errorf("/etc/nftables.conf changed:\n%s", conf)
		}
	})

	t.Run("a rule added by hand is repaired", func(t *testing.T) {
		labtest.Shell(t, l, "mysql-1", "nft", "add", "rule", "inet", "fwpush", "input", "tcp", "dport", "4444", "accept")
		code, out, _ := cli(t, l, "run", "--dry-run", "--limit", "mysql-1", site)
		if code != exitChanges || !strings.Contains(out, "-\t\ttcp dport 4444 accept") {
			t.Errorf("--dry-run: exit %d, want %d and a diff that removes the rule", code, exitChanges)
		}
		code, out, _ = cli(t, l, "run", "--limit", "mysql-1", site)
		if code != exitOK || !strings.Contains(out, "drift repaired") {
			t.Errorf("run: exit %d, want 0 and drift repaired", code)
		}
		if table := labtest.Shell(t, l, "mysql-1", "nft", "list", "table", "inet", "fwpush"); strings.Contains(table, "4444") {
			t.Errorf("the rule survived:\n%s", table)
		}
		if got := foreign(); got != before {
			t.Errorf("the foreign table changed:\n%s\nwant:\n%s", got, before)
		}
	})

	t.Run("a reboot loads exactly fwpush's table", func(t *testing.T) {
		log := labtest.Reboot(t, l, "mysql-1")
		if !strings.Contains(log, "boot: nft -f /etc/fwpush/fwpush.nft") {
			t.Errorf("the boot did not load fwpush.nft:\n%s", log)
		}
		if tables := labtest.Shell(t, l, "mysql-1", "nft", "list", "tables"); tables != "table inet fwpush\n" {
			t.Errorf("after the reboot: %q, want table inet fwpush alone", tables)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--limit", "mysql-1", site); code != exitOK {
			t.Errorf("after the reboot: exit %d, want 0: the host is the policy", code)
		}
	})

	t.Run("wordpress-2 moves to nftables and back", func(t *testing.T) {
		src, err := os.ReadFile(site)
		if err != nil {
			t.Fatal(err)
		}
		host := "[hosts.wordpress-2]\nrole       = \"app\"\nprivate_ip = \"198.18.0.22\"\n"
		moved := strings.Replace(string(src), host, host+"backend    = \"nftables\"\n", 1)
		if moved == string(src) {
			t.Fatal("examples/mixed.toml: no [hosts.wordpress-2] to move")
		}
		for _, step := range []struct {
			name, inventory string
			nft             bool
		}{{"to nftables", moved, true}, {"back to iptables", string(src), false}} {
			if err := os.WriteFile(site, []byte(step.inventory), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, _ := cli(t, l, "run", "--limit", "wordpress-2", site)
			if code != exitOK || !strings.Contains(out, "applied") {
				t.Errorf("%s: exit %d, want 0 and applied", step.name, code)
			}
			state := labtest.Shell(t, l, "wordpress-2", "sh", "-c", "nft list tables; iptables-save -t filter | grep -c '^-A' ; ls /etc/iptables /etc/fwpush 2>/dev/null; true")
			hasTable, hasRules := strings.Contains(state, "table inet fwpush"), !strings.Contains(state, "\n0\n") && !strings.HasPrefix(state, "0\n")
			if hasTable != step.nft || hasRules == step.nft || strings.Contains(state, "rules.v4") == step.nft || strings.Contains(state, "fwpush.nft") != step.nft {
				t.Errorf("%s: wordpress-2 has:\n%s", step.name, state)
			}
			if code, _, _ := cli(t, l, "check", site); code != exitOK {
				t.Errorf("%s: check: exit %d, want 0", step.name, code)
			}
			if code, _, _ := cli(t, l, "run", "--dry-run", "--limit", "wordpress-2", site); code != exitOK {
				t.Errorf("%s: a second run: exit %d, want 0", step.name, code)
			}
		}
	})
}
