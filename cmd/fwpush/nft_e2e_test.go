package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// foreignScript makes, on a lab host, a table of someone else's (Docker's
// or firewalld's, say): a base chain at the input hook with a rule.
const foreignScript = `nft add table ip other
nft add chain ip other input '{ type filter hook input priority 0; policy accept; }'
nft add rule ip other input tcp dport 9999 drop
nft add chain ip other mine
nft add rule ip other mine udp dport 9998 drop`

// dockerScript gives a lab host what Docker, on iptables-nft, makes for a
// container that publishes port 8080 (docker run -p 8080:8080): the
// container (a network namespace of the host's, fwp-ctr, 198.18.17.2)
// behind its bridge's end, docker0; the DNAT in the nat table; Docker's
// filter table, whose FORWARD drops but accepts the published port; IPv4
// forwarding on. In the container, table ip seen counts what reaches its
// port 8080. Nothing listens there: the container refuses the connection,
// which a probe calls reachable.
const dockerScript = `ip netns add fwp-ctr
ip link add docker0 type veth peer name eth0 netns fwp-ctr
ip addr add 198.18.17.1/24 dev docker0
ip link set docker0 up
ip -n fwp-ctr addr add 198.18.17.2/24 dev eth0
ip -n fwp-ctr link set eth0 up
ip -n fwp-ctr route add default via 198.18.17.1
printf '%s\n' 'table ip seen { chain input { type filter hook input priority filter; policy accept; tcp dport 8080 counter; }; }' |
  nsenter --net=/run/netns/fwp-ctr nft -f -
echo 1 > /proc/sys/net/ipv4/ip_forward
printf '%s\n' '*nat' ':PREROUTING ACCEPT [0:0]' ':INPUT ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' ':POSTROUTING ACCEPT [0:0]' ':DOCKER - [0:0]' \
  '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER' \
  '-A POSTROUTING -s 198.18.17.0/24 ! -o docker0 -j MASQUERADE' \
  '-A DOCKER -i docker0 -j RETURN' \
  '-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.17.2:8080' \
  COMMIT '*filter' ':INPUT ACCEPT [0:0]' ':FORWARD DROP [0:0]' ':OUTPUT ACCEPT [0:0]' ':DOCKER - [0:0]' ':DOCKER-USER - [0:0]' \
  '-A FORWARD -j DOCKER-USER' \
  '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' \
  '-A FORWARD -o docker0 -j DOCKER' \
  '-A FORWARD -i docker0 ! -o docker0 -j ACCEPT' \
  '-A FORWARD -i docker0 -o docker0 -j ACCEPT' \
  '-A DOCKER -d 198.18.17.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 8080 -j ACCEPT' \
  '-A DOCKER-USER -j RETURN' COMMIT | iptables-restore --noflush`

// movedToNFT reads the inventory at site (examples/mixed.toml), and
// returns it, and it with wordpress-2 moved to nftables ahead of its role.
func movedToNFT(t *testing.T, site string) (src []byte, moved string) {
	t.Helper()
	src, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	host := "[hosts.wordpress-2]\nrole       = \"app\"\nprivate_ip = \"198.18.0.22\"\n"
	moved = strings.Replace(string(src), host, host+"backend    = \"nftables\"\n", 1)
	if moved == string(src) {
		t.Fatal("examples/mixed.toml: no [hosts.wordpress-2] to move")
	}
	return src, moved
}

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
//   - plan, then apply: a saved plan repairs mysql-1's table, and leaves
//     mysql-2, changed since the plan, as it is (stale);
//   - a reboot loads exactly fwpush's table, and the host is unchanged;
//   - wordpress-2 moves to nftables and back: its old backend's rules,
//     sets and files go in the same run (others' sets stay), check passes
//     each time; where nft is missing, the move installs nftables;
//   - mysql-1 runs a container of Docker's that publishes a port:
//     fwpush's forward chain drops it (check says so) until the role's
//     template (examples/templates/docker.tmpl) accepts it there; then
//     check passes, and Docker's tables stay as Docker made them.
func TestNFTablesInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "mixed.toml")
	// The lab's apt repository holds nftables, for a run to install it
	// where nft is missing.
	l := labtest.Start(t, site, lab.Options{Hosts: map[string]lab.HostOptions{"wordpress-2": {Packages: []string{"nftables"}}}})
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

	t.Run("plan, then apply, on nftables hosts", func(t *testing.T) {
		table := func(host string) string { return labtest.Shell(t, l, host, "nft", "list", "table", "inet", "fwpush") }
		for _, h := range []string{"mysql-1", "mysql-2"} {
			labtest.Shell(t, l, h, "nft", "add", "rule", "inet", "fwpush", "input", "tcp", "dport", "4445", "accept")
		}
		planPath := filepath.Join(t.TempDir(), "db.plan")
		code, out, _ := cli(t, l, "plan", "--limit", "db", "-o", planPath, site)
		if code != exitChanges || !strings.Contains(out, "-\t\ttcp dport 4445 accept") || !strings.Contains(out, "plan: 2 hosts to change, written to "+planPath) {
			t.Fatalf("plan: exit %d, want %d, the diff and the plan written", code, exitChanges)
		}
		data, err := os.ReadFile(planPath)
		if err != nil {
			t.Fatal(err)
		}
		validateJSON(t, "plan", data)
		if !strings.Contains(string(data), `"nft":`) {
			t.Errorf("the plan holds no table for nft:\n%s", data)
		}
		if !strings.Contains(table("mysql-1"), "4445") {
			t.Errorf("plan changed mysql-1's table")
		}

		// mysql-2 changes again after the plan: stale, left as it is.
		labtest.Shell(t, l, "mysql-2", "nft", "add", "rule", "inet", "fwpush", "input", "tcp", "dport", "4446", "accept")
		handChanged := table("mysql-2")
		code, out, _ = cli(t, l, "apply", "--json", planPath)
		var rep runReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("apply --json: %v", err)
		}
		validateJSON(t, "apply", []byte(out))
		if code != exitFailed || rep.Counts["stale"] != 1 || rep.Counts["drift_repaired"] != 1 {
			t.Errorf("apply with mysql-2 changed since: exit %d, counts %v; want %d, mysql-2 stale and mysql-1 repaired", code, rep.Counts, exitFailed)
		}
		for _, h := range rep.Hosts {
			if want := map[string]string{"mysql-1": "drift_repaired", "mysql-2": "stale"}[h.Host]; h.Status != want {
				t.Errorf("%s: %s (%s), want %s", h.Host, h.Status, h.Error, want)
			}
		}
		if strings.Contains(table("mysql-1"), "4445") {
			t.Errorf("the apply left mysql-1's hand-added rule")
		}
		if got := table("mysql-2"); got != handChanged {
			t.Errorf("the stale host was touched:\n%s\nwant:\n%s", got, handChanged)
		}
		if got := foreign(); got != before {
			t.Errorf("the foreign table changed:\n%s\nwant:\n%s", got, before)
		}
		if code, _, _ := cli(t, l, "run", "--limit", "mysql-2", site); code != exitOK {
			t.Errorf("run on mysql-2: exit %d, want 0", code)
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
		src, moved := movedToNFT(t, site)
		// On iptables, its role's sets are ipsets, persisted in
		// /etc/iptables/ipsets; a set of someone else's is there too.
		labtest.Shell(t, l, "wordpress-2", "ipset", "create", "f2b-sshd", "hash:ip")
		sets := func() string {
			return labtest.Shell(t, l, "wordpress-2", "sh", "-c", "echo sets: $(ipset list -n | sort); ls /etc/iptables 2>/dev/null; true")
		}
		if got := sets(); !strings.Contains(got, "fwp-app-4") || !strings.Contains(got, "ipsets") {
			t.Errorf("wordpress-2 on iptables has no fwp-app-4 or no /etc/iptables/ipsets: %s", got)
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
			// The filter table the move gives back is fwpush's: its drops
			// are not another table's to warn of.
			if strings.Contains(out, "warning:") {
				t.Errorf("%s: warnings of a host with no other tables", step.name)
			}
			state := labtest.Shell(t, l, "wordpress-2", "sh", "-c", "nft list tables; iptables-save -t filter | grep -c '^-A' ; ls /etc/iptables /etc/fwpush 2>/dev/null; true")
			hasTable, hasRules := strings.Contains(state, "table inet fwpush"), !strings.Contains(state, "\n0\n") && !strings.HasPrefix(state, "0\n")
			if hasTable != step.nft || hasRules == step.nft || strings.Contains(state, "rules.v4") == step.nft || strings.Contains(state, "fwpush.nft") != step.nft {
				t.Errorf("%s: wordpress-2 has:\n%s", step.name, state)
			}
			// fwpush's ipsets go with the move to nftables (its sets are
			// in its table), and come back with the move back; others'
			// stay.
			if got := sets(); strings.Contains(got, "fwp-") == step.nft || strings.Contains(got, "fwq-") || strings.Contains(got, "ipsets") == step.nft || !strings.Contains(got, "f2b-sshd") {
				t.Errorf("%s: wordpress-2's ipsets: %s", step.name, got)
			}
			if code, _, _ := cli(t, l, "check", site); code != exitOK {
				t.Errorf("%s: check: exit %d, want 0", step.name, code)
			}
			if code, _, _ := cli(t, l, "run", "--dry-run", "--limit", "wordpress-2", site); code != exitOK {
				t.Errorf("%s: a second run: exit %d, want 0", step.name, code)
			}
		}
	})
	t.Run("nft missing: the run installs nftables", func(t *testing.T) {
		// wordpress-2, back on iptables, loses nft; moved to nftables
		// again, the run installs the package (from the lab's apt
		// repository, which holds it: see Start's options) before nft
		// tests the table.
		_, moved := movedToNFT(t, site)
		labtest.Shell(t, l, "wordpress-2", "dpkg", "--purge", "nftables")
		if out, err := l.Shell(t.Context(), "wordpress-2", "sh", "-c", "command -v nft"); err == nil {
			t.Fatalf("nft is still there after dpkg --purge nftables: %s", out)
		}
		if err := os.WriteFile(site, []byte(moved), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, _ := cli(t, l, "run", "--limit", "wordpress-2", site); code != exitOK || !strings.Contains(out, "applied") {
			t.Errorf("run: exit %d, want 0 and applied", code)
		}
		if got := labtest.Shell(t, l, "wordpress-2", "dpkg-query", "-W", "-f=${Status}", "nftables"); got != "install ok installed" {
			t.Errorf("nftables on wordpress-2: %q, want installed", got)
		}
		if table := labtest.Shell(t, l, "wordpress-2", "nft", "list", "table", "inet", "fwpush"); !strings.Contains(table, "policy drop") {
			t.Errorf("wordpress-2's table:\n%s", table)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--limit", "wordpress-2", site); code != exitOK {
			t.Errorf("a second run: exit %d, want 0", code)
		}
	})
	t.Run("a published port of Docker's, allowed in the role", func(t *testing.T) {
		src, err := os.ReadFile(site)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := os.ReadFile("../../examples/templates/docker.tmpl")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(filepath.Dir(site), "templates")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "docker.tmpl"), tmpl, 0o644); err != nil {
			t.Fatal(err)
		}
		labtest.Shell(t, l, "mysql-1", "sh", "-ec", dockerScript)
		t.Cleanup(func() {
			// The test's context is done when cleanups run.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, err := l.Shell(ctx, "mysql-1", "ip", "netns", "del", "fwp-ctr"); err != nil {
				t.Logf("mysql-1: ip netns del fwp-ctr: %v %s", err, out)
			}
		})
		docker := func() string {
			return labtest.Shell(t, l, "mysql-1", "sh", "-c", "{ iptables-save -t nat; iptables-save -t filter; } | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'")
		}
		dockerBefore := docker()
		seen := func() string {
			return labtest.Shell(t, l, "mysql-1", "nsenter", "--net=/run/netns/fwp-ctr", "nft", "list", "table", "ip", "seen")
		}
		const none = "counter packets 0 bytes 0"

		// The policy says nothing of the port: the host's forward chain
		// drops it before it gets to the container.
		if got := labtest.Probe(t, l, "wordpress-1", "198.18.0.31", 8080); got != lab.Filtered {
			t.Errorf("wordpress-1 -> mysql-1:8080 before the role allows it: %s, want filtered", got)
		}

		// The role allows it, and the built-in policy accepts it at the
		// input hook only: check says it is shut.
		allowed := strings.Replace(string(src), `allow = [ { from = "app", tcp = [3306] }, { from = "db", tcp = [3306] } ]`,
			`allow = [ { from = "app", tcp = [3306, 8080] }, { from = "db", tcp = [3306] } ]`, 1)
		if allowed == string(src) {
			t.Fatal("examples/mixed.toml: no allow line in [roles.db] to add the port to")
		}
		if err := os.WriteFile(site, []byte(allowed), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := cli(t, l, "run", "--limit", "mysql-1", site)
		if code != exitFailed || !strings.Contains(out, "-> mysql-1 (198.18.0.31:8080): expected reachable, observed filtered") {
			t.Errorf("the port allowed at the input hook only: exit %d, want %d and check's mismatch on mysql-1:8080", code, exitFailed)
		}
		if !strings.Contains(out, "warning: host mysql-1: table ip filter: base chain FORWARD drops at the forward hook") {
			t.Errorf("no warning of Docker's FORWARD, which drops")
		}
		if got := seen(); !strings.Contains(got, none) {
			t.Errorf("the container saw packets the host's forward chain should have dropped:\n%s", got)
		}

		// With docker.tmpl as the role's template, the forward chain
		// accepts it from the role's sources: check passes, and its
		// probes get to the container.
		templated := strings.Replace(allowed, "[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"templates/docker.tmpl\"", 1)
		if templated == allowed {
			t.Fatal("examples/mixed.toml: no template line in [roles.db]")
		}
		if err := os.WriteFile(site, []byte(templated), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := cli(t, l, "run", "--limit", "mysql-1", site); code != exitOK {
			t.Errorf("the port allowed in the role's forward chain: exit %d, want 0 (check passing)", code)
		}
		if got := seen(); strings.Contains(got, none) {
			t.Errorf("the container saw nothing of check's probes:\n%s", got)
		}
		labtest.Expect(t, l, []labtest.Want{
			{"wordpress-1", "198.18.0.31", 8080, lab.Reachable},
			{"tunnel-1", "198.18.0.31", 8080, lab.Filtered},
			{"mysql-2", "198.18.0.31", 8080, lab.Filtered},
		})
		if got := docker(); got != dockerBefore {
			t.Errorf("Docker's tables changed:\n%s\nwant:\n%s", got, dockerBefore)
		}
		if code, _, _ := cli(t, l, "check", "--limit", "mysql-1", site); code != exitOK {
			t.Errorf("check: exit %d, want 0", code)
		}
	})
}
