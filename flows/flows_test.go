package flows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

func example(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// compile compiles an inventory written as body, with opts.
func compile(t *testing.T, body string, opts roles.Options) *roles.Plan {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.CompileHosts(inv, os.ReadFile, inv.Hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// edit replaces old with new in body, failing when body has no old.
func edit(t *testing.T, body, old, new string) string {
	t.Helper()
	if !strings.Contains(body, old) {
		t.Fatalf("the inventory has no %q", old)
	}
	return strings.Replace(body, old, new, 1)
}

func TestOf(t *testing.T) {
	plan := compile(t, example(t), roles.Default())
	var got []string
	for _, f := range Of(plan.Inventory) {
		got = append(got, f.String())
	}
	want := []string{
		"tunnel-1 -> app tcp/22",
		"app -> app tcp/all",
		"db -> app tcp/3306",
		"lb -> app tcp/80",
		"198.51.100.0/24 -> app tcp/9100",
		"tunnel-1 -> db tcp/22",
		"app -> db tcp/3306",
		"db -> db tcp/3306",
		"internet -> lb tcp/80",
		"internet -> lb tcp/443",
		"tunnel-1 -> lb tcp/22",
		"internet -> tunnel tcp/22",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows of examples/site.toml (-want +got):\n%s", diff)
	}
}

// TestCompare: the example against a copy with one port added reports
// exactly that flow, and the hosts whose rules it changes: both ends
// (the lb's OUTPUT drops what it does not open).
func TestCompare(t *testing.T) {
	for _, opts := range []roles.Options{{}, {Sets: true}} {
		old := compile(t, example(t), opts)
		cur := compile(t, edit(t, example(t), `{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`), opts)
		d := Compare(old, cur)
		want := Diff{
			Opened:  []Flow{{From: "lb", FromKind: KindRole, To: "app", Proto: "tcp", Port: "8080"}},
			Closed:  []Flow{},
			Added:   []Host{},
			Removed: []Host{},
		}
		// As many rules as before on each host: a multiport match
		// holds both ports.
		var changed []string
		for _, h := range d.Changed {
			changed = append(changed, h.Host)
			if h.After != h.Before {
				t.Errorf("%s: %d rules, then %d: a multiport match takes the port", h.Host, h.Before, h.After)
			}
		}
		d.Changed = nil
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("sets %v: diff (-want +got):\n%s", opts.Sets, diff)
		}
		if diff := cmp.Diff([]string{"haproxy-www", "wordpress-1", "wordpress-2"}, changed); diff != "" {
			t.Errorf("sets %v: hosts changed (-want +got):\n%s", opts.Sets, diff)
		}
		if d.Same() {
			t.Error("a flow opened, and Same")
		}
		if d := Compare(old, old); !d.Same() || len(d.Changed) != 0 {
			t.Errorf("an inventory against itself: %+v", d)
		}
	}
}

// One rule per address (roles.Options{}): every host whose peers change
// has rules that change; with sets, only its sets' members would.
func TestCompareHostsAndFlows(t *testing.T) {
	base := example(t)
	old := compile(t, base, roles.Options{})
	body := edit(t, base, "[hosts.mysql-2]\nrole       = \"db\"\nprivate_ip = \"198.18.0.32\"\n", "")
	body = edit(t, body, "[hosts.wordpress-2]", "[hosts.wordpress-3]\nrole       = \"app\"\nprivate_ip = \"198.18.0.23\"\n\n[hosts.wordpress-2]")
	body = edit(t, body, `{ from = "app" },`, `{ from = "app", tcp = [24007] },`)
	body = edit(t, body, `public_tcp = [80, 443]`, `public_tcp = [443]`)
	d := Compare(old, compile(t, body, roles.Options{}))
	var opened, closed []string
	for _, f := range d.Opened {
		opened = append(opened, f.String())
	}
	for _, f := range d.Closed {
		closed = append(closed, f.String())
	}
	if diff := cmp.Diff([]string{"app -> app tcp/24007"}, opened); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"app -> app tcp/all", "internet -> lb tcp/80"}, closed); diff != "" {
		t.Errorf("closed (-want +got):\n%s", diff)
	}
	if len(d.Added) != 1 || d.Added[0].Host != "wordpress-3" || d.Added[0].Before != -1 || d.Added[0].After == 0 {
		t.Errorf("added %+v", d.Added)
	}
	if len(d.Removed) != 1 || d.Removed[0].Host != "mysql-2" || d.Removed[0].After != -1 {
		t.Errorf("removed %+v", d.Removed)
	}
	names := map[string]bool{}
	for _, h := range d.Changed {
		names[h.Host] = true
	}
	// Every host: mysql-1 loses mysql-2 and gains wordpress-3; the lb
	// reaches wordpress-3; the app servers have the new port and host;
	// the tunnel reaches the new host's SSH and no longer mysql-2's.
	for _, h := range []string{"haproxy-www", "mysql-1", "tunnel-1", "wordpress-1", "wordpress-2"} {
		if !names[h] {
			t.Errorf("%s's rules change, and it is not in %+v", h, d.Changed)
		}
	}
}
