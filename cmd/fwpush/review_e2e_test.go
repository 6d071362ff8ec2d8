package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/planfile"
)

// TestReviewInLab is the acceptance of review before apply, on real sshd
// and real iptables, in one lab of the example fleet:
//
//   - plan reads every host and saves the plan (mode 0600), changing
//     nothing; apply applies it, but not on wordpress-2, changed by hand
//     in between: stale, and left as it was, while the others apply;
//   - a plan whose inventory changed since is refused whole, nothing
//     touched; the same plan applies once the inventory is as it was;
//   - a plan keeps the --force-own it was made with;
//   - explain agrees with the network it applied.
func TestReviewInLab(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	site := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(site, src, 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, site)
	planPath := filepath.Join(dir, "site.plan")

	before := snapshot(t, l)
	code, out, _ := cli(t, l, "plan", "-o", planPath, site)
	if code != exitChanges || !strings.Contains(out, "would change") || !strings.Contains(out, "plan: 6 hosts to change, written to "+planPath) {
		t.Fatalf("plan of a fresh fleet: exit %d, want %d and the plan written", code, exitChanges)
	}
	sameSnapshot(t, "plan", before, snapshot(t, l))
	fi, err := os.Stat(planPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the plan: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	data, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "plan", data)
	saved, err := planfile.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Hosts) != len(siteHosts) || saved.Counts["apply"] != len(siteHosts) || saved.Inventory.Path != site {
		t.Fatalf("the plan: %d hosts, counts %v, inventory %s", len(saved.Hosts), saved.Counts, saved.Inventory.Path)
	}

	// A hand change between the plan and its apply.
	labtest.Shell(t, l, "wordpress-2", "iptables", "-I", "INPUT", "1", "-s", "198.51.100.7/32", "-j", "ACCEPT")
	handChanged := snapshot(t, l)["wordpress-2"]

	code, out, _ = cli(t, l, "apply", "--no-verify", "--json", planPath)
	var rep runReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("apply --json: %v", err)
	}
	validateJSON(t, "apply", []byte(out))
	if code != exitFailed || rep.ExitCode != exitFailed || rep.Counts["stale"] != 1 || rep.Counts["applied"] != len(siteHosts)-1 {
		t.Fatalf("apply with a host changed since: exit %d, counts %v; want %d, 1 stale and the others applied", code, rep.Counts, exitFailed)
	}
	for _, h := range rep.Hosts {
		if h.Host == "wordpress-2" && (h.Status != "stale" || !strings.Contains(h.Error, "its live rules differ from those the plan read")) {
			t.Errorf("wordpress-2: %s, %q; want stale, naming its rules", h.Status, h.Error)
		}
	}
	if got := snapshot(t, l)["wordpress-2"]; got != handChanged {
		t.Errorf("the stale host was touched:\nbefore:\n%s\nafter:\n%s", handChanged, got)
	}
	code, out, _ = cli(t, l, "run", "--dry-run", "--no-diff", site)
	if code != exitChanges || strings.Count(out, "unchanged") < len(siteHosts)-1 || !strings.Contains(out, "wordpress-2") {
		t.Errorf("after the apply: exit %d; want every host but wordpress-2 unchanged", code)
	}

	t.Run("a plan whose inventory changed since is refused whole", func(t *testing.T) {
		code, _, _ := cli(t, l, "plan", "-o", planPath, site)
		if code != exitChanges {
			t.Fatalf("plan: exit %d, want %d (wordpress-2)", code, exitChanges)
		}
		changed := strings.Replace(string(src), `{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`, 1)
		if err := os.WriteFile(site, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, l)
		code, out, errOut := cli(t, l, "apply", planPath)
		if code != exitInvalid || out != "" || !strings.Contains(errOut, "the inventory "+site+" has changed since the plan was made") {
			t.Errorf("apply after an inventory change: exit %d, want %d refusing it; stdout %q", code, exitInvalid, out)
		}
		sameSnapshot(t, "a refused apply", before, snapshot(t, l))

		// As it was: the plan holds again, and repairs wordpress-2.
		if err := os.WriteFile(site, src, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ = cli(t, l, "apply", planPath)
		if code != exitOK || !strings.Contains(out, "all as expected") {
			t.Errorf("apply of the plan, the inventory as it was: exit %d, want 0 and its check all as expected", code)
		}
		if live := labtest.Shell(t, l, "wordpress-2", "iptables-save"); strings.Contains(live, "198.51.100.7") {
			t.Errorf("the rule added by hand survived the apply:\n%s", live)
		}
		if code, _, _ := cli(t, l, "run", "--dry-run", "--no-diff", site); code != exitOK {
			t.Errorf("after the apply: exit %d, want every host unchanged", code)
		}
	})

	t.Run("a plan's --force-own holds on apply, and only then", func(t *testing.T) {
		labtest.Shell(t, l, "mysql-2", "sh", "-ec", "iptables -N backdoor; iptables -A backdoor -j ACCEPT; iptables -I INPUT 1 -j backdoor")
		code, _, errOut := cli(t, l, "plan", "--limit", "mysql-2", "-o", planPath, site)
		if code != exitChanges || !strings.Contains(errOut, "host mysql-2: apply will refuse it: unknown chains: backdoor") {
			t.Errorf("plan of a host with an unknown chain: exit %d, want %d, saying apply will refuse it", code, exitChanges)
		}
		code, out, _ := cli(t, l, "apply", "--no-verify", planPath)
		if code != exitFailed || !strings.Contains(out, "host mysql-2: unknown chains: backdoor") {
			t.Errorf("apply of a plan without --force-own: exit %d, want %d refusing the backdoor", code, exitFailed)
		}
		if code, _, _ := cli(t, l, "plan", "--force-own", "--limit", "mysql-2", "-o", planPath, site); code != exitChanges {
			t.Fatalf("plan --force-own: exit %d, want %d", code, exitChanges)
		}
		if code, _, _ := cli(t, l, "apply", "--no-verify", planPath); code != exitOK {
			t.Errorf("apply of a plan made with --force-own: exit %d, want 0", code)
		}
		if live := labtest.Shell(t, l, "mysql-2", "iptables-save"); strings.Contains(live, "backdoor") {
			t.Errorf("the backdoor survived:\n%s", live)
		}
	})

	t.Run("explain agrees with the network", func(t *testing.T) {
		for _, tc := range []struct {
			from, to, port, addr string
			n                    int
			want                 lab.Reachability
		}{
			{"wordpress-1", "mysql-1", "tcp/3306", "198.18.0.31", 3306, lab.Reachable},
			{"wordpress-1", "mysql-1", "tcp/22", "198.18.0.31", 22, lab.Filtered},
			{"haproxy-www", "wordpress-2", "tcp/80", "198.18.0.22", 80, lab.Reachable},
			{"haproxy-www", "mysql-2", "tcp/3306", "198.18.0.32", 3306, lab.Filtered},
		} {
			code, out, _ := cli(t, l, "explain", site, tc.from, tc.to, tc.port)
			said := strings.SplitN(out, "\n", 2)[0]
			got := labtest.Probe(t, l, tc.from, tc.addr, tc.n)
			if (said == "allowed") != (got == lab.Reachable) || (code == exitOK) != (said == "allowed") {
				t.Errorf("%s -> %s %s: explain says %q (exit %d), the network %s", tc.from, tc.to, tc.port, said, code, got)
			}
		}
	})
}
