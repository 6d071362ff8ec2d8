package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/templates"
)

// setsEnv marks the re-executed test binary of TestSetsInLab: the phase
// to run, then the inventory's path.
const setsEnv = "FWPUSH_TEST_SETS"

// A third app server that the lab does not run: added to the inventory,
// it changes the members of fwp-app-4 on the db servers, and nothing else.
const wordpress3 = "\n[hosts.wordpress-3]\nrole       = \"app\"\nprivate_ip = \"198.18.0.23\"\n"

// TestSetsInLab is issue 18's host side on real sshd, iptables and ipset:
// the policy with sets pushed (ipset-persistent installed, the sets and
// /etc/iptables/ipsets written); a new app server changes only the
// members of the db servers' set; a member added by hand is drift,
// repaired; a set change whose rules cut SSH is rolled back, sets and
// rules; a reboot loads the sets before the rules, exactly the policy;
// and a run after it changes nothing.
func TestSetsInLab(t *testing.T) {
	if v := os.Getenv(setsEnv); v != "" {
		phase, path, _ := strings.Cut(v, " ")
		setsScenario(t, phase, path)
		return
	}
	t.Parallel()
	src, err := os.ReadFile("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := strings.Replace(string(src), `timeout     = "10s"`, "timeout     = \"5s\"\nrollback_after = \"8s\"", 1)
	site, grown := filepath.Join(dir, "site.toml"), filepath.Join(dir, "grown.toml")
	if err := os.WriteFile(site, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(grown, []byte(body+wordpress3), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, site)
	phase := func(name, path string) {
		t.Helper()
		cmd := labtest.Rerun(t.Context(), l, []string{setsEnv + "=" + name + " " + path}, "-test.run=^TestSetsInLab$", "-test.v")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		t.Logf("phase %s:\n%s", name, out.String())
		if err != nil {
			t.Fatalf("phase %s in the controller: %v", name, err)
		}
	}
	const db = "mysql-1"
	sets := func() string {
		t.Helper()
		return labtest.Shell(t, l, db, "sh", "-c", "ipset list -n | sort; ipset save fwp-app-4 | grep ^add | sort")
	}
	rules := func() string {
		t.Helper()
		return rulesOf(labtest.Shell(t, l, db, "iptables-save", "-t", "filter"))
	}
	members := func(addrs ...string) string {
		s := "add fwp-app-4 " + strings.Join(addrs, "\nadd fwp-app-4 ") + "\n"
		return s
	}

	// The first push: every host gets its sets and its rules that match
	// them, and persists both.
	phase("push", site)
	if got := rules(); !strings.Contains(got, "--match-set fwp-app-4 src") || strings.Contains(got, "-s 198.18.0.21/32") {
		t.Errorf("%s's rules after the push:\n%s\nwant one rule matching fwp-app-4, none per app server", db, got)
	}
	if got := sets(); !strings.Contains(got, members("198.18.0.21", "198.18.0.22")) || strings.Contains(got, "fwq-") {
		t.Errorf("%s's sets after the push:\n%s", db, got)
	}
	pkgs := labtest.Shell(t, l, db, "sh", "-c", "dpkg-query -W -f='${Package} ${Status}\n' ipset-persistent; debconf-show ipset-persistent; cat /etc/iptables/ipsets")
	if !strings.Contains(pkgs, "ipset-persistent install ok installed") || !strings.Contains(pkgs, "ipset-persistent/autosave: false") ||
		!strings.Contains(pkgs, "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n") {
		t.Errorf("%s: ipset-persistent and /etc/iptables/ipsets after the push:\n%s", db, pkgs)
	}
	rulesBefore := rules()

	// A new app server: the db servers' set gains it, their rules stay.
	phase("members", grown)
	if got := rules(); got != rulesBefore {
		t.Errorf("%s's rules changed with the membership:\nbefore:\n%s\nafter:\n%s", db, rulesBefore, got)
	}
	if got := sets(); !strings.Contains(got, members("198.18.0.21", "198.18.0.22", "198.18.0.23")) || strings.Contains(got, "fwq-") {
		t.Errorf("%s's sets after the new app server:\n%s", db, got)
	}

	// A member added by hand is drift: the run takes it out, and says so.
	labtest.Shell(t, l, db, "ipset", "add", "fwp-app-4", "203.0.113.9")
	phase("drift", grown)
	if got := sets(); strings.Contains(got, "203.0.113.9") || !strings.Contains(got, members("198.18.0.21", "198.18.0.22", "198.18.0.23")) {
		t.Errorf("%s's sets after the drift was repaired:\n%s", db, got)
	}

	// A set change (wordpress-3 leaves) whose rules cut SSH: the guard
	// puts back the old rules and the old members.
	setsBefore := sets()
	phase("rollback", site)
	if got := sets(); got != setsBefore {
		t.Errorf("%s's sets after the rollback:\n%s\nwant them as before:\n%s", db, got, setsBefore)
	}
	if got := rules(); got != rulesBefore {
		t.Errorf("%s's rules after the rollback:\n%s\nwant them as before:\n%s", db, got, rulesBefore)
	}

	// A reboot: the kernel forgets sets and rules, and netfilter-persistent
	// loads the sets (ipset-persistent's plugin, 10-ipset) before the
	// rules (15-ip4tables), which match them.
	labtest.Shell(t, l, db, "ipset", "add", "fwp-app-4", "203.0.113.7")
	boot := labtest.Reboot(t, l, db)
	if !strings.Contains(boot, "netfilter-persistent start") {
		t.Errorf("%s's boot:\n%s", db, boot)
	}
	if got := sets(); got != setsBefore {
		t.Errorf("%s's sets after the reboot:\n%s\nwant:\n%s", db, got, setsBefore)
	}
	if got := rules(); got != rulesBefore {
		t.Errorf("%s's rules after the reboot:\n%s\nwant:\n%s", db, got, rulesBefore)
	}
	phase("unchanged", grown)
}

// setsScenario runs one phase of TestSetsInLab on the lab's controller,
// with the inventory at path compiled with sets.
func setsScenario(t *testing.T, phase, path string) {
	inv, _, fleet := scenario(t, path)
	plan, err := roles.CompileHosts(inv, templates.ReadFile, inv.Hosts, roles.Options{Sets: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var hosts []*inventory.Host
	for _, h := range inv.Hosts {
		if h.Name != "wordpress-3" { // not in the lab
			hosts = append(hosts, h)
		}
	}
	dbs := []*inventory.Host{}
	for _, name := range []string{"mysql-1", "mysql-2"} {
		h, _ := inv.Host(name)
		dbs = append(dbs, h)
	}
	if phase == "rollback" {
		pol, _ := plan.Policy("mysql-1")
		pol.V4 = bytes.Replace(pol.V4, []byte(":OUTPUT ACCEPT [0:0]"), []byte(":OUTPUT DROP [0:0]"), 1)
		hosts = dbs[:1]
	}
	if phase != "push" && phase != "rollback" {
		hosts = dbs
	}
	res := Run(ctx, plan, hosts, fleet, RunOptions{})
	for _, r := range res {
		sets, _ := json.Marshal(r.Sets)
		t.Logf("%s: %s (+%d -%d rules, +%d -%d members %s) in %s %v", r.Host, r.Status, r.Added, r.Removed, r.MembersAdded, r.MembersRemoved, sets, r.Duration, r.Err)
	}
	for _, r := range res {
		switch phase {
		case "push":
			if r.Status != Applied || !r.Persisted {
				t.Errorf("%s: %s (%v), want applied and persisted", r.Host, r.Status, r.Err)
			}
		case "members":
			// Only the set: no rule added or removed, one member more.
			if r.Status != Applied || r.Added+r.Removed != 0 || r.MembersAdded != 1 || r.MembersRemoved != 0 ||
				len(r.Sets) != 1 || r.Sets[0].Name != "fwp-app-4" || strings.Join(r.Sets[0].Added, " ") != "198.18.0.23" {
				t.Errorf("%s: %s (%v), rules +%d -%d, members +%d -%d %+v; want applied, fwp-app-4 gaining 198.18.0.23 alone",
					r.Host, r.Status, r.Err, r.Added, r.Removed, r.MembersAdded, r.MembersRemoved, r.Sets)
			}
		case "drift":
			want := Unchanged
			if r.Host == "mysql-1" {
				want = DriftRepaired
			}
			if r.Status != want || want == DriftRepaired && (r.MembersRemoved != 1 || r.Added+r.Removed != 0) {
				t.Errorf("%s: %s (%v), members +%d -%d; want %s", r.Host, r.Status, r.Err, r.MembersAdded, r.MembersRemoved, want)
			}
		case "rollback":
			if r.Status != RolledBack || r.MembersRemoved != 1 {
				t.Errorf("%s: %s (%v), members -%d; want rolled back, one member removed", r.Host, r.Status, r.Err, r.MembersRemoved)
			}
		case "unchanged":
			if r.Status != Unchanged {
				t.Errorf("%s: %s (%v), want unchanged", r.Host, r.Status, r.Err)
			}
		default:
			t.Fatalf("phase %q?", phase)
		}
	}
	// What the host tells now: fwpush's sets as the policy's, once the
	// run kept them.
	if phase == "push" || phase == "members" || phase == "drift" {
		for _, h := range dbs {
			host, err := fleet.Open(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			f, err := host.Facts(ctx)
			host.Close()
			if err != nil {
				t.Fatal(err)
			}
			pol, _ := plan.Policy(h.Name)
			live, err := policy.ParseSets(f.Sets)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := policy.CanonicalSets(live), policy.CanonicalSets(pol.Sets); got != want {
				t.Errorf("%s's sets:\n%s\nwant:\n%s", h.Name, got, want)
			}
		}
	}
}
