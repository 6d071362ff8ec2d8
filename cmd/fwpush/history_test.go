package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
)

// Bad flags are invalid input, and contact nothing.
func TestHistoryFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "--since", "yesterday", exampleSite}, "fwpush: --since yesterday: want a duration back from now"},
		{[]string{"history", "--last", "-1", exampleSite}, "fwpush: --last -1: want 0 (all) or more"},
		{[]string{"history", "--limit", "nope", exampleSite}, "fwpush: --limit nope: "},
	} {
		code, out, errs := fwpush(t, tc.args...)
		if code != exitInvalid || out != "" || !strings.HasPrefix(errs, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 3 and %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
	code, out, _ := fwpush(t, "history", "--list-hosts", "-l", "db", exampleSite)
	if code != exitOK || out != "  hosts (2):\n    mysql-1\n    mysql-2\n" {
		t.Errorf("--list-hosts: exit %d, %q", code, out)
	}
}

// A fleet no host of which can be tried (no key): the cause said once,
// and exit 1.
func TestHistoryNoHostRead(t *testing.T) {
	code, out, errs := fwpush(t, append(noKey(t), "history", exampleSite)...)
	if code != exitFailed || out != "no change recorded\n" || strings.Count(errs, "no SSH key") != 1 {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant 1, and the one cause once", code, out, errs)
	}
}

var historyEntries = []history.Entry{
	{Time: time.Date(2026, 12, 6, 17, 5, 3, 0, time.UTC), Outcome: history.Applied, Host: "mysql-1", Who: "op@laptop", Version: "v1.2.0",
		Inventory: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Policy: "sha256:ab", Added: 3, Removed: 1, Joined: []string{"app-3"}},
	{Time: time.Date(2026, 12, 6, 17, 6, 0, 0, time.UTC), Outcome: history.RolledBack, Host: "mysql-2", Who: "cron@ctl", Version: "v1.2.0",
		Inventory: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Policy: "sha256:cd", Added: 0, Removed: 2, Left: []string{"app-1", "app-2"}},
}

func TestHistoryTable(t *testing.T) {
	var b bytes.Buffer
	writeHistoryTable(&b, historyEntries)
	var got []string
	for l := range strings.Lines(b.String()) {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"TIME HOST OUTCOME WHO RULES INVENTORY FLEET",
		"2026-12-06T17:05:03Z mysql-1 applied op@laptop +3 -1 0123456789ab +app-3",
		"2026-12-06T17:06:00Z mysql-2 rolled_back cron@ctl +0 -2 0123456789ab -app-1 -app-2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	b.Reset()
	writeHistoryTable(&b, historyEntries[:0])
	if b.String() != "no change recorded\n" {
		t.Errorf("no entries: %q", b.String())
	}
	b.Reset()
	e := historyEntries[0]
	e.Joined = nil
	writeHistoryTable(&b, []history.Entry{e})
	if strings.Contains(b.String(), "FLEET") {
		t.Errorf("a fleet column with no fleet change:\n%s", b.String())
	}
}

// --json prints one object a line, each a historyEntry of the schema.
func TestHistoryJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeHistoryJSON(&b, historyEntries); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(historyEntries) {
		t.Fatalf("%d lines for %d entries:\n%s", len(lines), len(historyEntries), b.String())
	}
	for i, l := range lines {
		if err := schemaErr(t, []byte(l)); err != nil {
			t.Errorf("line %d does not match %s: %v\n%s", i+1, schemaFile, err, l)
		}
		var e history.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil || !cmp.Equal(e, historyEntries[i]) {
			t.Errorf("line %d reads back as %+v (%v)", i+1, e, err)
		}
	}
	// What a host writes is a line of the schema too.
	body := history.Run{Who: "op@laptop", Version: "dev", Inventory: "sha256:1"}.Entry("db-1", "sha256:2", 1, 0).Body()
	line := `{"time":"2026-12-06T17:05:03Z","outcome":"drift_repaired",` + string(body)
	if err := schemaErr(t, []byte(line)); err != nil {
		t.Errorf("a host's line does not match %s: %v\n%s", schemaFile, err, line)
	}
}

// A run keeps the fleet it resolved; the next says which hosts joined and
// left, in its report and in its JSON; a dry run compares and keeps
// nothing (see runPush).
func TestMembership(t *testing.T) {
	t.Setenv("FWPUSH_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	site := copyExample(t)
	inv, err := inventory.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadMembership(site, inv)
	if err != nil || m.String() != "" {
		t.Fatalf("the first run: %q, %v; want nothing to say", m.String(), err)
	}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	// wordpress-2 leaves, wordpress-3 joins.
	for _, h := range inv.Hosts {
		if h.Name == "wordpress-2" {
			h.Name = "wordpress-3"
		}
	}
	if m, err = loadMembership(site, inv); err != nil || m.String() != "joined: wordpress-3; left: wordpress-2" {
		t.Fatalf("after a change: %q, %v", m.String(), err)
	}
	// The same file under another name is the same inventory.
	link := filepath.Join(t.TempDir(), "link.toml")
	if err := os.Symlink(site, link); err != nil {
		t.Fatal(err)
	}
	if m2, _ := loadMembership(link, inv); m2.String() != m.String() {
		t.Errorf("through a symbolic link: %q, want %q", m2.String(), m.String())
	}

	results := []runner.HostResult{{Host: "wordpress-3", Role: "app", Status: runner.Applied, Added: 4}}
	var b bytes.Buffer
	r := newReporter(&b, runFlags{})
	r.members = m
	r.finish(results, time.Second)
	if !strings.Contains(b.String(), "\nfleet since the last run: joined: wordpress-3; left: wordpress-2\n") {
		t.Errorf("the report does not say it:\n%s", b.String())
	}
	// --quiet says it even when no host changed.
	b.Reset()
	r = newReporter(&b, runFlags{quiet: true})
	r.members = m
	r.finish([]runner.HostResult{{Host: "mysql-1", Role: "db", Status: runner.Unchanged}}, time.Second)
	if !strings.Contains(b.String(), "joined: wordpress-3") {
		t.Errorf("--quiet hides the fleet's change:\n%s", b.String())
	}
	b.Reset()
	r = newReporter(&b, runFlags{asJSON: true})
	r.members = m
	if err := r.writeJSON(site, results, time.Second, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "run", b.Bytes())
	var rep runReport
	if err := json.Unmarshal(b.Bytes(), &rep); err != nil || !cmp.Equal(rep.Joined, []string{"wordpress-3"}) || !cmp.Equal(rep.Left, []string{"wordpress-2"}) {
		t.Errorf("JSON joined %v, left %v (%v)", rep.Joined, rep.Left, err)
	}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	if m, _ = loadMembership(site, inv); m.String() != "" {
		t.Errorf("after the run that saw it: %q, want nothing", m.String())
	}
	// A run of the same fleet writes nothing (no fsync on every cron
	// run): the file is left as it was.
	files, err := filepath.Glob(filepath.Join(os.Getenv("FWPUSH_STATE_DIR"), "*.fleet"))
	if err != nil || len(files) != 1 {
		t.Fatalf("state files %v, %v; want one", files, err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(files[0], past, past); err != nil {
		t.Fatal(err)
	}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(files[0]); err != nil || !fi.ModTime().Equal(past) {
		t.Errorf("the same fleet written again: %v, %v", fi.ModTime(), err)
	}
}
