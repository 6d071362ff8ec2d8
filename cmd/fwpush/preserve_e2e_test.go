package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab/labtest"
)

// A preserved name is no blind spot: a chain named like a preserve
// pattern (f2b-evil) that accepts every packet, jumped to from the top of
// INPUT, is warned of by run, which leaves it (the pattern trusts what it
// keeps); run --strict-preserve refuses the host for it, as drift, and
// with --force-own removes it; and so do plan --strict-preserve and the
// plan's apply.
func TestPreserveOpeningInLab(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/docs/preserve/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(site, []byte(strings.Replace(string(src), `timeout     = "10s"`, `timeout     = "4s"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, site)
	if code, _, _ := cli(t, l, "run", "--no-verify", site); code != exitOK {
		t.Fatalf("the first run: exit %d", code)
	}
	labtest.Shell(t, l, "mysql-1", "sh", "-c", "iptables -N f2b-evil && iptables -A f2b-evil -j ACCEPT && iptables -I INPUT 1 -j f2b-evil")

	code, out, _ := cli(t, l, "run", "--no-verify", "--limit", "mysql-1", site)
	if code != exitOK || !strings.Contains(out, "1 unchanged") ||
		!strings.Contains(out, "warning: host mysql-1: IPv4: the preserved chain f2b-evil accepts every packet that INPUT sends it (-A f2b-evil -j ACCEPT)") {
		t.Errorf("run: exit %d, want 0, mysql-1 unchanged, and the opening warned of", code)
	}
	code, js, _ := cli(t, l, "run", "--json", "--no-verify", "--limit", "mysql-1", site)
	validateJSON(t, "run", []byte(js))
	if rep := reportOf(t, js); code != exitOK || len(rep.Hosts) != 1 || len(rep.Hosts[0].Warnings) != 1 {
		t.Errorf("run --json: exit %d, want 0 and the warning in warnings", code)
	}
	code, out, _ = cli(t, l, "run", "--no-verify", "--strict-preserve", "--limit", "mysql-1", site)
	if code != exitFailed || !strings.Contains(out, "error: host mysql-1: unknown chains: f2b-evil: a preserve pattern keeps it, but it accepts every packet") {
		t.Errorf("run --strict-preserve: exit %d, want mysql-1 refused for the unknown chain f2b-evil", code)
	}
	if live, _ := hostRules(t, l, "mysql-1"); !strings.Contains(live, "-A f2b-evil -j ACCEPT") {
		t.Errorf("run --strict-preserve changed mysql-1 while it refused it")
	}
	code, out, _ = cli(t, l, "run", "--no-verify", "--strict-preserve", "--force-own", "--limit", "mysql-1", site)
	if code != exitOK || !strings.Contains(out, "drift repaired") {
		t.Errorf("run --strict-preserve --force-own: exit %d, want mysql-1's drift repaired", code)
	}
	if live, persisted := hostRules(t, l, "mysql-1"); strings.Contains(live, "f2b-evil") || live != persisted {
		t.Errorf("f2b-evil is still on mysql-1, or the policy is not persisted:\nlive:\n%s\npersisted:\n%s", live, persisted)
	}

	// plan takes --strict-preserve as run does, and its apply keeps it.
	labtest.Shell(t, l, "mysql-1", "sh", "-c", "iptables -N f2b-evil && iptables -A f2b-evil -j ACCEPT && iptables -I INPUT 1 -j f2b-evil")
	plan := filepath.Join(t.TempDir(), "site.plan")
	if code, _, _ := cli(t, l, "plan", "--limit", "mysql-1", "-o", plan, site); code != exitOK {
		t.Errorf("plan: exit %d, want 0: without --strict-preserve f2b-evil is trusted", code)
	}
	// As a dry run shows a host a run would refuse, the plan holds it,
	// and says that its apply refuses it.
	code, _, errs := cli(t, l, "plan", "--strict-preserve", "--limit", "mysql-1", "-o", plan, site)
	if code != exitChanges || !strings.Contains(errs, "plan: host mysql-1: apply will refuse it: unknown chains: f2b-evil: a preserve pattern keeps it, but it accepts every packet") {
		t.Errorf("plan --strict-preserve: exit %d, want 2, and mysql-1 refused for f2b-evil", code)
	}
	if code, out, _ := cli(t, l, "apply", "--no-verify", plan); code != exitFailed || !strings.Contains(out, "error: host mysql-1: unknown chains: f2b-evil") {
		t.Errorf("apply of the plan --strict-preserve: exit %d, want mysql-1 refused for f2b-evil (not stale)", code)
	}
	if live, _ := hostRules(t, l, "mysql-1"); !strings.Contains(live, "-A f2b-evil -j ACCEPT") {
		t.Errorf("the apply changed mysql-1 while it refused it")
	}
	if code, _, _ := cli(t, l, "plan", "--strict-preserve", "--force-own", "--limit", "mysql-1", "-o", plan, site); code != exitChanges {
		t.Fatalf("plan --strict-preserve --force-own: exit %d, want 2", code)
	}
	if data, err := os.ReadFile(plan); err != nil || !strings.Contains(string(data), `"strict_preserve": true`) {
		t.Errorf("the plan does not say it was made with --strict-preserve (%v)", err)
	}
	if code, out, _ := cli(t, l, "apply", "--no-verify", plan); code != exitOK || !strings.Contains(out, "drift repaired") {
		t.Errorf("apply of the plan: exit %d, want mysql-1's drift repaired", code)
	}
	if live, persisted := hostRules(t, l, "mysql-1"); strings.Contains(live, "f2b-evil") || live != persisted {
		t.Errorf("after the plan's apply, f2b-evil is still on mysql-1, or the policy is not persisted:\nlive:\n%s\npersisted:\n%s", live, persisted)
	}
}
