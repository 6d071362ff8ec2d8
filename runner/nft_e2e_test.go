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
)

// nftGuardEnv marks the re-executed test binary of TestNFTGuardInLab.
const nftGuardEnv = "FWPUSH_TEST_NFT_GUARD_INVENTORY"

// TestNFTGuardInLab proves the guard of the nftables backend on real sshd
// and nft: a table that cuts SSH (its output chain's policy turned to
// drop, which kills the replies of every session) is never left in place.
// mysql-1 had fwpush's table already: it gets that table back, as it was;
// mysql-2 had none: it ends without one. A foreign table on mysql-1 stays
// byte for byte through the push and the rollback.
func TestNFTGuardInLab(t *testing.T) {
	if path := os.Getenv(nftGuardEnv); path != "" {
		nftGuardScenario(t, path)
		return
	}
	t.Parallel()
	src, err := os.ReadFile("../examples/mixed.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mixed.toml")
	body := strings.Replace(string(src), "[ssh]\n", "[ssh]\ntimeout = \"3s\"\nrollback_after = \"5s\"\n", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l := labtest.Start(t, path)
	labtest.Shell(t, l, "mysql-1", "sh", "-ec", `nft add table ip other
nft add chain ip other input '{ type filter hook input priority 0; policy accept; }'
nft add rule ip other input tcp dport 9999 drop`)
	foreign := func() string { return labtest.Shell(t, l, "mysql-1", "nft", "list", "table", "ip", "other") }
	before := foreign()

	cmd := labtest.Rerun(t.Context(), l, []string{nftGuardEnv + "=" + path}, "-test.run=^TestNFTGuardInLab$", "-test.v")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("guard scenario in the controller: %v\n%s", err, out.String())
	}
	t.Logf("guard scenario:\n%s", out.String())

	if got := foreign(); got != before {
		t.Errorf("the foreign table changed:\n%s\nwant:\n%s", got, before)
	}
	if tables := labtest.Shell(t, l, "mysql-2", "nft", "list", "tables"); strings.Contains(tables, "fwpush") {
		t.Errorf("mysql-2, which had no table, has after the rollback:\n%s", tables)
	}
	for _, h := range []string{"mysql-1", "mysql-2"} {
		if got := labtest.Probe(t, l, "tunnel-1", map[string]string{"mysql-1": "198.18.0.31", "mysql-2": "198.18.0.32"}[h], 22); got != lab.Reachable {
			t.Errorf("%s's SSH after the rollback: %s", h, got)
		}
	}
	if files := labtest.Shell(t, l, "mysql-2", "sh", "-c", "ls /etc/fwpush 2>/dev/null; true"); strings.Contains(files, "fwpush.nft") {
		t.Errorf("mysql-2 persisted a table that was rolled back: %s", files)
	}
}

func nftGuardScenario(t *testing.T, path string) {
	inv, plan, fleet := scenario(t, path)
	m1, _ := inv.Host("mysql-1")
	m2, _ := inv.Host("mysql-2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := func(h *inventory.Host) string {
		t.Helper()
		c, err := fleet.Open(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.Facts(ctx)
		if err != nil || f.NFT == nil {
			t.Fatalf("%s: facts %+v: %v", h.Name, f.NFT, err)
		}
		return f.NFT.Own
	}

	// mysql-1 gets its policy first.
	if res := Run(ctx, plan, []*inventory.Host{m1}, fleet, RunOptions{}); res[0].Status != Applied {
		t.Fatalf("mysql-1: %s (%v), want applied", res[0].Status, res[0].Err)
	}
	before := own(m1)
	if !strings.Contains(before, "table inet fwpush") {
		t.Fatalf("mysql-1's table after its push:\n%s", before)
	}

	// Then a table that cuts SSH, on both.
	for _, name := range []string{"mysql-1", "mysql-2"} {
		pol, _ := plan.Policy(name)
		cut := false
		for _, c := range pol.NFT.Chains {
			if c.Hook == "output" {
				c.Policy, cut = "drop", true
			}
		}
		if !cut {
			t.Fatalf("%s's table has no output chain", name)
		}
	}
	start := time.Now()
	res := Run(ctx, plan, []*inventory.Host{m1, m2}, fleet, RunOptions{})
	t.Logf("took %s", time.Since(start))
	for _, r := range res {
		t.Logf("%s: %s in %s %v", r.Host, r.Status, r.Duration, r.Err)
		if r.Status != RolledBack || !strings.Contains(r.Err.Error(), "reachable again") {
			t.Errorf("%s: %s (%v), want rolled back and reachable", r.Host, r.Status, r.Err)
		}
	}
	if after := own(m1); after != before {
		t.Errorf("mysql-1's table after the rollback:\n%s\nwant it as it was:\n%s", after, before)
	}
	if after := own(m2); after != "" {
		t.Errorf("mysql-2's table after the rollback:\n%s\nwant none", after)
	}
}
