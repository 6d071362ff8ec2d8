package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onePortMore writes a copy of the example inventory whose lb may open
// port 8080 on app too, and returns its path.
func onePortMore(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(src), `{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`, 1)
	if body == string(src) {
		t.Fatal("examples/site.toml has no lb allow entry to add a port to")
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiffCommand: the example against a copy with one port added reports
// exactly that flow, as text, Markdown and JSON, and exits 2; the example
// against itself exits 0.
func TestDiffCommand(t *testing.T) {
	site, more := "../../examples/site.toml", onePortMore(t)

	code, out, errOut := fwpush(t, "diff", site, more)
	want := "flows opened (1):\n  + lb -> app tcp/8080\nflows closed: none\nhosts added: none\nhosts removed: none\n" +
		"hosts whose rules change (3):\n  ~ haproxy-www (lb): 38 -> 38 rules\n  ~ wordpress-1 (app): 23 -> 23 rules\n  ~ wordpress-2 (app): 23 -> 23 rules\n"
	if code != exitChanges || out != want {
		t.Errorf("diff: exit %d, want %d; output:\n%s\nwant:\n%s%s", code, exitChanges, out, want, errOut)
	}

	code, out, _ = fwpush(t, "diff", "--format", "markdown", site, more)
	for _, w := range []string{
		"### fwpush diff: `" + site + "` → `" + more + "`\n",
		"**Flows opened (1)**\n\n| from | to | port |\n|---|---|---|\n| lb | app | tcp/8080 |\n",
		"| haproxy-www | lb | 38 | 38 |\n",
	} {
		if code != exitChanges || !strings.Contains(out, w) {
			t.Errorf("diff --format markdown: exit %d, output lacks %q:\n%s", code, w, out)
		}
	}
	if strings.Contains(out, "Flows closed") {
		t.Errorf("diff --format markdown shows an empty table:\n%s", out)
	}

	code, out, _ = fwpush(t, "diff", "--json", site, more)
	validateJSON(t, "diff", []byte(out))
	var doc diffReport
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if code != exitChanges || doc.ExitCode != exitChanges || len(doc.Opened) != 1 || doc.Opened[0].String() != "lb -> app tcp/8080" ||
		len(doc.Closed) != 0 || len(doc.Changed) != 3 {
		t.Errorf("diff --json: exit %d, %+v", code, doc)
	}

	// The other way round: the flow closes.
	if code, out, _ := fwpush(t, "diff", more, site); code != exitChanges || !strings.Contains(out, "flows closed (1):\n  - lb -> app tcp/8080\n") {
		t.Errorf("diff NEW OLD: exit %d:\n%s", code, out)
	}
	code, out, _ = fwpush(t, "diff", site, site)
	if code != exitOK || !strings.HasPrefix(out, "flows opened: none\nflows closed: none\n") {
		t.Errorf("diff of the same inventory: exit %d:\n%s", code, out)
	}
	code, out, _ = fwpush(t, "diff", "--json", site, site)
	validateJSON(t, "diff", []byte(out))
	if code != exitOK {
		t.Errorf("diff --json of the same inventory: exit %d", code)
	}
	for _, args := range [][]string{{site}, {"--format", "html", site, site}, {site, "nope.toml"}} {
		if code, _, _ := fwpush(t, append([]string{"diff"}, args...)...); code != exitInvalid {
			t.Errorf("diff %v: exit %d, want %d", args, code, exitInvalid)
		}
	}
}
