package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/transport"
)

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
func TestGuardInLab(t *testing.T) {
	if path := os.Getenv(guardEnv); path != "" {
		guardScenario(t, path)
		return
	}
	src, err := os.ReadFile("../examples/site.toml")
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

	cmd := l.Command(t.Context(), os.Args[0], "-test.run=^TestGuardInLab$", "-test.v")
	cmd.Env = append(cmd.Env, guardEnv+"="+path)
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

func guardScenario(t *testing.T, path string) {
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := plan.Policy("mysql-1")
	pol.V4 = bytes.Replace(pol.V4, []byte(":OUTPUT ACCEPT [0:0]"), []byte(":OUTPUT DROP [0:0]"), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fleet, err := Open(ctx, inv, transport.Options{
		Identity: os.Getenv("FWPUSH_IDENTITY"), KnownHosts: os.Getenv("FWPUSH_KNOWN_HOSTS"), Timeout: inv.SSH.Timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	m1, _ := inv.Host("mysql-1")
	m2, _ := inv.Host("mysql-2")
	start := time.Now()
	res := Run(ctx, plan, []*inventory.Host{m1, m2}, fleet, RunOptions{})
	t.Logf("took %s", time.Since(start))
	for _, r := range res {
		t.Logf("%s: %s %v", r.Host, r.Status, r.Err)
	}
	if res[0].Status != RolledBack || !strings.Contains(res[0].Err.Error(), "reachable again") {
		t.Errorf("mysql-1: %s (%v), want rolled back and reachable", res[0].Status, res[0].Err)
	}
	if res[1].Status != Applied {
		t.Errorf("mysql-2: %s (%v), want applied", res[1].Status, res[1].Err)
	}
}
