package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/planfile"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// savedPlan writes a copy of the example inventory and a plan of it, as
// fwpush plan would make it of fresh hosts at created, and returns their
// paths.
func savedPlan(t *testing.T, created time.Time, version string) (inv, plan string) {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	inv = filepath.Join(dir, "site.toml")
	if err := os.WriteFile(inv, src, 0o644); err != nil {
		t.Fatal(err)
	}
	p := planOf(t, inv, created, version)
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	plan = filepath.Join(dir, "site.plan")
	if err := writePrivate(plan, data); err != nil {
		t.Fatal(err)
	}
	return inv, plan
}

// planOf is the plan fwpush plan would make of the inventory at path,
// every host fresh.
func planOf(t *testing.T, path string, created time.Time, version string) *planfile.Plan {
	t.Helper()
	i, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := roles.Compile(i, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	open := "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	var changes []*change.Change
	for _, h := range i.Hosts {
		pol, _ := compiled.Policy(h.Name)
		c := change.Decide(i, pol, live.Facts{
			Tools:   []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"},
			Backend: "nf_tables", Links: []string{"lo", h.PrivateIface, h.PublicIface}, V4: open, V6: open, IPSet: true,
		}, change.Options{})
		changes = append(changes, &c)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return planfile.New(compiled.Digest(), abs, changes, planfile.Options{Sets: compiled.Options.Sets}, "", version, created)
}

// TestPlanJSONSchema: a saved plan, and apply's report, are documents the
// schema describes.
func TestPlanJSONSchema(t *testing.T) {
	_, path := savedPlan(t, time.Now(), fullVersion())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "plan", data)
	if err := schemaErr(t, bytes.Replace(data, []byte(`"state": "sha256:`), []byte(`"state": "sha1:`), 1)); err == nil {
		t.Error("the schema accepts a plan with a host's state that is no digest")
	}

	var out bytes.Buffer
	r := newReporter(&out, runFlags{asJSON: true})
	r.command = "apply"
	results := []runner.HostResult{
		{Host: "mysql-1", Role: "db", Status: runner.Applied},
		{Host: "mysql-2", Role: "db", Status: runner.Stale, Stage: runner.StageStale, Err: &runner.HostError{Host: "mysql-2", Err: os.ErrNotExist}},
	}
	if err := r.writeJSON("site.toml", results, time.Second, nil, nil, exitFailed); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "apply", out.Bytes())
	var doc runReport
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Counts["stale"] != 1 || doc.Hosts[1].Status != "stale" {
		t.Errorf("apply --json: counts %v, hosts %+v", doc.Counts, doc.Hosts)
	}
}

// TestApplyRefuses: a plan apply must not carry out is refused whole, exit
// 3, before anything is contacted (the example's addresses answer
// nothing here: a contact would end otherwise).
func TestApplyRefuses(t *testing.T) {
	t.Run("a plan as made", func(t *testing.T) {
		// The control: what is refused below is refused for its reason.
		_, plan := savedPlan(t, time.Now(), fullVersion())
		if code, _, errOut := fwpush(t, "apply", "--limit", "nobody-at-all", plan); code != exitInvalid || !strings.Contains(errOut, "--limit nobody-at-all") {
			t.Errorf("apply --limit nobody-at-all: exit %d, stderr %q", code, errOut)
		}
	})
	for _, tc := range []struct {
		name    string
		created time.Time
		version string
		edit    func(t *testing.T, inv, plan string)
		args    []string
		want    string
	}{
		{name: "older than an hour", created: time.Now().Add(-61 * time.Minute), want: "more than --max-age 1h0m0s"},
		{name: "older than --max-age", created: time.Now().Add(-10 * time.Minute), args: []string{"--max-age", "5m"}, want: "more than --max-age 5m0s"},
		{name: "another version", created: time.Now(), version: "v0.0.1-other", want: "it was made by fwpush v0.0.1-other"},
		{name: "the inventory changed", created: time.Now(), edit: func(t *testing.T, inv, _ string) {
			b, _ := os.ReadFile(inv)
			if err := os.WriteFile(inv, bytes.Replace(b, []byte(`tcp = [80] }`), []byte(`tcp = [80, 8080] }`), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "has changed since the plan was made"},
		{name: "the inventory gone", created: time.Now(), edit: func(t *testing.T, inv, _ string) { os.Remove(inv) }, want: "read inventory"},
		{name: "another inventory", created: time.Now(), args: []string{"--inventory", "../../examples/sites.toml"}, want: "has changed since the plan was made"},
		{name: "not a plan", created: time.Now(), edit: func(t *testing.T, _, plan string) {
			if err := os.WriteFile(plan, []byte(`{"schema": "fwpush/v1", "command": "run"}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "not a saved plan of fwpush"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := tc.version
			if version == "" {
				version = fullVersion()
			}
			inv, plan := savedPlan(t, tc.created, version)
			if tc.edit != nil {
				tc.edit(t, inv, plan)
			}
			code, out, errOut := fwpush(t, append(append([]string{"apply"}, tc.args...), plan)...)
			if code != exitInvalid || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("apply: exit %d, want %d; stderr %q, want %q; stdout %q", code, exitInvalid, errOut, tc.want, out)
			}
		})
	}
	if code, _, _ := fwpush(t, "apply", "--max-age", "0s", "x.plan"); code != exitInvalid {
		t.Errorf("apply --max-age 0s: exit %d, want %d", code, exitInvalid)
	}
}

func TestPlanNeedsOut(t *testing.T) {
	code, out, errOut := fwpush(t, "plan", "../../examples/site.toml")
	if code != exitInvalid || out != "" || !strings.Contains(errOut, "plan needs -o PLAN") {
		t.Errorf("plan without -o: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = fwpush(t, "plan", "-o", "../fwpush/../../examples/site.toml", "../../examples/site.toml")
	if code != exitInvalid || !strings.Contains(errOut, "is the inventory") {
		t.Errorf("plan -o INVENTORY: exit %d, stderr %q", code, errOut)
	}
}

// TestWritePrivate: the plan replaces the file whole, readable by its
// owner only, leaving nothing else behind.
func TestWritePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "site.plan")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePrivate(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if fi.Mode().Perm() != 0o600 || string(b) != "new" {
		t.Errorf("mode %v, content %q; want 0600 and the new content", fi.Mode().Perm(), b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if err := writePrivate(filepath.Join(dir, "no", "such", "dir.plan"), nil); err == nil {
		t.Error("a plan written into a directory that is not")
	}
}

// TestPlanHosts: apply's hosts are the plan's that --limit selects, in
// the inventory's order; the inventory's own list is left as it is.
func TestPlanHosts(t *testing.T) {
	i, err := inventory.Load("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Clone(i.Hosts)
	p := &planfile.Plan{Hosts: []*change.Change{{Host: "mysql-2"}, {Host: "tunnel-1"}, {Host: "haproxy-www"}}}
	for limit, want := range map[string][]string{
		"":        {"haproxy-www", "mysql-2", "tunnel-1"},
		"db":      {"mysql-2"},
		"!mysql*": {"haproxy-www", "tunnel-1"},
	} {
		hosts, err := planHosts(i, p, limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hosts {
			got = append(got, h.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("--limit %q: %v, want %v", limit, got, want)
		}
		if !slices.Equal(i.Hosts, all) {
			t.Fatalf("--limit %q: the inventory's hosts changed: %v", limit, i.Hosts)
		}
	}
	if _, err := planHosts(i, p, "app"); err == nil {
		t.Error("--limit app, none of whose hosts the plan holds: no error")
	}
}
