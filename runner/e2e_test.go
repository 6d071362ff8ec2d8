package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// TestMain runs the lab tests at once, each in a lab of its own (see
// labtest.Main).
func TestMain(m *testing.M) { labtest.Main(m) }

// guardEnv marks the re-executed test binary that runs inside the lab's
// controller namespace.
const guardEnv = "FWPUSH_TEST_GUARD_INVENTORY"

// TestGuardInLab proves the last line of defence on real sshd and
// iptables: a policy that cuts SSH is never left in place. Validation and
// preflight refuse such policies, so the test hands the runner one
// directly: mysql-1's OUTPUT is turned to DROP, which kills the replies of
// every SSH session. mysql-1 must end reachable with its previous rules,
// reported as rolled back, while mysql-2 succeeds.
//
// The runner must dial from the controller's namespace, so the test binary
// runs itself there (guardScenario) and the outer test checks the hosts.
//
// It runs on the tutorial's fleet as root, and on the cloud fleet as
// deploy, becoming root with sudo: the guard and the apply then run as
// root under sudo and outlive the login session.
func TestGuardInLab(t *testing.T) {
	if path := os.Getenv(guardEnv); path != "" {
		guardScenario(t, path)
		return
	}
	t.Parallel()
	for _, example := range []string{"site", "cloud"} {
		t.Run(example, func(t *testing.T) {
			t.Parallel()
			guardInLab(t, "../examples/"+example+".toml")
		})
	}
}

func guardInLab(t *testing.T, example string) {
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	body := strings.Replace(string(src), `timeout     = "10s"`, "timeout     = \"3s\"\nrollback_after = \"5s\"", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, path)
	before := labtest.Shell(t, l, "mysql-1", "iptables-save", "-t", "filter")

	cmd := labtest.Rerun(t.Context(), l, []string{guardEnv + "=" + path}, "-test.run=^TestGuardInLab$", "-test.v")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("guard scenario in the controller: %v\n%s", err, out.String())
	}
	t.Logf("guard scenario:\n%s", out.String())

	after := labtest.Shell(t, l, "mysql-1", "iptables-save", "-t", "filter")
	if strings.Contains(after, "fwpush") || strings.Contains(after, ":OUTPUT DROP") || rulesOf(after) != rulesOf(before) {
		t.Errorf("mysql-1 did not get its previous rules back:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := labtest.Probe(t, l, "tunnel-1", "198.18.0.31", 22); got != lab.Reachable {
		t.Errorf("mysql-1's SSH after the rollback: %s", got)
	}
	if files := labtest.Shell(t, l, "mysql-1", "sh", "-c", "ls /etc/iptables 2>/dev/null; true"); strings.Contains(files, "rules.v4") {
		t.Errorf("mysql-1 persisted a policy that was rolled back: %s", files)
	}
}

// rulesOf keeps the rule lines of an iptables-save output.
func rulesOf(save string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// scenario loads the inventory at path, compiles it, and opens its fleet
// from the lab's controller (where the test binary runs itself), with the
// lab's key and known_hosts; the fleet closes when the test ends.
func scenario(t *testing.T, path string) (*inventory.Inventory, *roles.Plan, *SSHFleet) {
	t.Helper()
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := Open(inv, transport.Options{
		Identity: os.Getenv("FWPUSH_IDENTITY"), KnownHosts: os.Getenv("FWPUSH_KNOWN_HOSTS"), Timeout: inv.SSH.Timeout,
	}, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	return inv, plan, fleet
}

func guardScenario(t *testing.T, path string) {
	inv, plan, fleet := scenario(t, path)
	pol, _ := plan.Policy("mysql-1")
	pol.V4 = bytes.Replace(pol.V4, []byte(":OUTPUT ACCEPT [0:0]"), []byte(":OUTPUT DROP [0:0]"), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m1, _ := inv.Host("mysql-1")
	m2, _ := inv.Host("mysql-2")
	start := time.Now()
	res := Run(ctx, plan, []*inventory.Host{m1, m2}, fleet, RunOptions{})
	t.Logf("took %s", time.Since(start))
	for _, r := range res {
		t.Logf("%s: %s in %s %v", r.Host, r.Status, r.Duration, r.Err)
	}
	if res[0].Status != RolledBack || !strings.Contains(res[0].Err.Error(), "reachable again") {
		t.Errorf("mysql-1: %s (%v), want rolled back and reachable", res[0].Status, res[0].Err)
	}
	if res[1].Status != Applied {
		t.Errorf("mysql-2: %s (%v), want applied", res[1].Status, res[1].Err)
	}
}

// settleEnv marks the re-executed test binary of TestSettleInLab.
const settleEnv = "FWPUSH_TEST_SETTLE_INVENTORY"

// killedToken is the run TestSettleInLab leaves unconfirmed, killedWho
// who ran it, as its history line says.
const (
	killedToken = "0badc0de0badc0de"
	killedWho   = "killed@lab"
)

// TestSettleInLab proves on real hosts what a run does with the applies a
// killed run left unconfirmed: mysql-1 got the policy itself (its rules
// are kept and its guard disarmed), mysql-2 another policy (rolled back at
// once); then both are applied and persisted, and no guard is left.
func TestSettleInLab(t *testing.T) {
	if path := os.Getenv(settleEnv); path != "" {
		settleScenario(t, path)
		return
	}
	if path := os.Getenv(factsEnv); path != "" {
		factsScenario(t, path)
		return
	}
	t.Parallel()
	src, err := os.ReadFile("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	// A short timeout: the killed run is gone after two of them and more
	// (see settleScenario); 3 s, so that every step still fits in one on a
	// loaded machine.
	body := strings.Replace(string(src), `timeout     = "10s"`, "timeout     = \"3s\"\nrollback_after = \"60s\"", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, path)
	cmd := labtest.Rerun(t.Context(), l, []string{settleEnv + "=" + path}, "-test.run=^TestSettleInLab$", "-test.v")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("settle scenario in the controller: %v\n%s", err, out.String())
	}
	t.Logf("settle scenario:\n%s", out.String())
	// mysql-1's rules were kept: its run's files stay until a later
	// apply; mysql-2 was applied again, which cleared the settled run.
	for host, want := range map[string]string{"mysql-1": "kept", "mysql-2": "gone"} {
		if got := strings.TrimSpace(labtest.Shell(t, l, host, "sh", "-c", "head -n 1 /run/fwpush/runs/"+killedToken+"/outcome 2>/dev/null || echo gone")); got != want {
			t.Errorf("%s: the killed run's apply was settled %q, want %q", host, got, want)
		}
		live := rulesOf(labtest.Shell(t, l, host, "iptables-save", "-t", "filter"))
		persisted := rulesOf(labtest.Shell(t, l, host, "cat", "/etc/iptables/rules.v4"))
		if live == "" || live != persisted {
			t.Errorf("%s: live rules are not the persisted policy:\n%s\n%s", host, live, persisted)
		}
		// Lab hosts share the machine's process table: a guard is this
		// host's when it sleeps in the host's network namespace (other
		// tests' labs have guards of their own).
		const guards = `n=0; me=$(readlink /proc/self/ns/net)
for p in $(pgrep -x sleep); do
  [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && [ "$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)" = "sleep 60 " ] && n=$((n + 1))
done
echo $n`
		if ps := labtest.Shell(t, l, host, "sh", "-c", guards); strings.TrimSpace(ps) != "0" {
			t.Errorf("%s: a guard still sleeps", host)
		}
		// The settle recorded the killed run's line, as its confirm
		// would have: kept on mysql-1, rolled back on mysql-2.
		outcome := map[string]string{"mysql-1": history.Applied, "mysql-2": history.RolledBack}[host]
		var got []string
		entries, _ := history.Parse(host, []byte(labtest.Shell(t, l, host, "cat", history.Path)))
		for _, e := range entries {
			if e.Who == killedWho {
				got = append(got, e.Outcome)
			}
		}
		if len(got) != 1 || got[0] != outcome {
			t.Errorf("%s: the killed run's lines in the history: %q, want one, %s", host, got, outcome)
		}
	}

	// A guard that has decided to roll back and is restoring, as the
	// restore.sh of a run does (decided, then the old rules, then the
	// outcome, under the run's lock), made slow: it restores only once a
	// read waits for it (or after 5s). A run reading the host meanwhile
	// must see the rules it restores.
	labtest.Shell(t, l, "mysql-1", "sh", "-c", `set -e
R=/run/fwpush/runs/feedface
mkdir -p $R/decided
printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' > $R/old.v4
cd $R
setsid sh -c 'exec 9>lock; flock 9; touch locked
  i=0; until ps -eo args | grep -q "^flock -w [0-9]* $PWD/lock"; do [ $i -lt 100 ] || break; sleep 0.05; i=$((i+1)); done
  iptables-restore -w < old.v4; echo rolledback > outcome' </dev/null >/dev/null 2>&1 &
while [ ! -e locked ]; do sleep 0.05; done`)
	cmd = labtest.Rerun(t.Context(), l, []string{factsEnv + "=" + path}, "-test.run=^TestSettleInLab$", "-test.v")
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("facts during a rollback, in the controller: %v\n%s", err, out.String())
	}
}

// factsEnv marks the re-executed test binary that reads mysql-1's facts
// for TestSettleInLab.
const factsEnv = "FWPUSH_TEST_FACTS_INVENTORY"

// factsScenario reads mysql-1 while a guard restores its old rules (an
// open filter table): the read must wait for the rollback and see its
// result, not the rules it is about to replace.
func factsScenario(t *testing.T, path string) {
	inv, _, fleet := scenario(t, path)
	m1, _ := inv.Host("mysql-1")
	host, err := fleet.Open(t.Context(), m1)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	f, err := host.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rules := rulesOf(f.V4); rules != "" || !strings.Contains(f.V4, ":INPUT ACCEPT") {
		t.Errorf("facts read during a rollback: got\n%s\nwant the open table the rollback restores", f.V4)
	}
}

func settleScenario(t *testing.T, path string) {
	inv, plan, fleet := scenario(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m1, _ := inv.Host("mysql-1")
	m2, _ := inv.Host("mysql-2")
	// The killed run: applied under a guard, never confirmed.
	for _, h := range []*inventory.Host{m1, m2} {
		pol, _ := plan.Policy(h.Name)
		want := policy.Canonical(string(pol.V4))
		if h == m2 {
			want = strings.Replace(want, "--dport 3306", "--dport 3307", 1)
		}
		host, err := fleet.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		// The sets its rules match, made by its stage.
		err = host.Apply(ctx, remote.Apply{Token: killedToken, RollbackAfter: time.Minute,
			V4: []byte(policy.Split{}.Merge(want)), V6: []byte(policy.Split{}.Merge(policy.Canonical(string(pol.V6)))),
			Sets:  remote.Sets{Stage: pol.IPSets()},
			Lease: 3 * time.Minute, LockWait: time.Second, Who: "the killed run",
			History: history.Run{Who: killedWho, Version: "test", Inventory: "sha256:0"}.Entry(h.Name, "sha256:killed", 1, 1).Body(),
			Done:    history.Applied})
		host.Close()
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
	// Its fwpush is gone: nothing confirms within two timeouts and more.
	time.Sleep(2*inv.SSH.Timeout + 6*time.Second)
	res := Run(ctx, plan, []*inventory.Host{m1, m2}, fleet, RunOptions{})
	for _, r := range res {
		t.Logf("%s: %s in %s %v", r.Host, r.Status, r.Duration, r.Err)
		if r.Status != Applied {
			t.Errorf("%s: %s (%v), want applied", r.Host, r.Status, r.Err)
		}
	}
}
