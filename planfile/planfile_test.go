package planfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/roles"
)

var created = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// example compiles an inventory written as body and returns it with the
// changes a dry run decides on fresh hosts, but mysql-1, whose policy is
// in place.
func example(t *testing.T, body string) (*roles.Plan, []*change.Change) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	var changes []*change.Change
	for _, h := range inv.Hosts {
		pol, _ := compiled.Policy(h.Name)
		f := live.Facts{
			Tools:      []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"},
			Backend:    "nf_tables",
			Links:      []string{"lo", h.PrivateIface, h.PublicIface},
			Persistent: true,
			IPSet:      true, // the policies match sets
			V4:         "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
			V6:         "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
		}
		if h.Name == "mysql-1" {
			f.V4, f.V6, f.Persisted4, f.Persisted6, f.Applied = string(pol.V4), string(pol.V6), string(pol.V4), string(pol.V6), change.Digest(pol)
			f.Sets, f.PersistedSets, f.PersistentSets = string(pol.IPSets()), string(pol.IPSets()), true
		}
		c := change.Decide(inv, pol, f, change.Options{})
		changes = append(changes, &c)
	}
	return compiled, changes
}

func site(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoundTrip(t *testing.T) {
	compiled, changes := example(t, site(t))
	p := New(compiled.Digest(), "/srv/fw/site.toml", changes, Options{ForceOwn: true}, "db,lb", "v1.2.3", created.In(time.FixedZone("x", 3600)))
	if p.ExitCode != 2 || p.Counts["apply"] != 5 || p.Counts["none"] != 1 || !p.Pending() {
		t.Errorf("exit %d, counts %v", p.ExitCode, p.Counts)
	}
	if !p.Created.Equal(created) || p.Created.Location() != time.UTC {
		t.Errorf("created %v, want %v in UTC", p.Created, created)
	}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"schema": "fwpush/v1"`, `"command": "plan"`, `"fwpush_version": "v1.2.3"`, `"created": "2026-03-04T05:06:07Z"`,
		`"path": "/srv/fw/site.toml"`, `"digest": "sha256:`, `"force_own": true`, `"limit": "db,lb"`, `"state": "sha256:`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the plan lacks %s:\n%.2000s", want, data)
		}
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("parsed back (-wrote +read):\n%s", diff)
	}
	if got := back.Changes(); len(got) != 6 || got["mysql-1"].Action != change.None || got["mysql-2"].Apply == nil {
		t.Errorf("changes by host: %v", got)
	}
}

func TestParseRefuses(t *testing.T) {
	compiled, changes := example(t, site(t))
	good, err := New(compiled.Digest(), "/srv/site.toml", changes, Options{}, "", "v1", created).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("the good plan: %v", err)
	}
	for name, bad := range map[string]string{
		"not JSON":          "plan:",
		"a run report":      strings.Replace(string(good), `"command": "plan"`, `"command": "run"`, 1),
		"another schema":    strings.Replace(string(good), `"schema": "fwpush/v1"`, `"schema": "fwpush/v2"`, 1),
		"no inventory path": strings.Replace(string(good), `"path": "/srv/site.toml"`, `"path": ""`, 1),
		"no time":           strings.Replace(string(good), `"created": "2026-03-04T05:06:07Z"`, `"created": "0001-01-01T00:00:00Z"`, 1),
		"a host twice":      strings.Replace(string(good), `"host": "mysql-2"`, `"host": "mysql-1"`, 1),
		"a host's state":    strings.Replace(string(good), `"state": "sha256:`, `"state": "sha1:`, 1),
		"no documents":      strings.Replace(string(good), `"apply": {`, `"not_apply": {`, 1),
	} {
		if bad == string(good) {
			t.Fatalf("%s: the plan did not change", name)
		}
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestCheck: what refuses a plan whole, before anything is contacted.
func TestCheck(t *testing.T) {
	body := site(t)
	compiled, changes := example(t, body)
	p := New(compiled.Digest(), "/srv/site.toml", changes, Options{}, "", "v1", created)
	if err := p.Check(compiled, created.Add(59*time.Minute), time.Hour, "v1"); err != nil {
		t.Fatalf("a plan of 59 minutes: %v", err)
	}
	if err := p.Check(compiled, created.Add(-30*time.Second), time.Hour, "v1"); err != nil {
		t.Errorf("a plan 30 seconds in the future (clock skew): %v", err)
	}
	// The inventory written otherwise, compiling to the same: the same.
	same, _ := example(t, "# reviewed by ops\n"+body)
	if err := p.Check(same, created, time.Hour, "v1"); err != nil {
		t.Errorf("a comment added to the inventory: %v", err)
	}
	changed, _ := example(t, strings.Replace(body, `{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`, 1))
	for name, tc := range map[string]struct {
		compiled *roles.Plan
		now      time.Time
		maxAge   time.Duration
		version  string
		want     string
	}{
		"too old":               {compiled, created.Add(61 * time.Minute), time.Hour, "v1", "it was made 1h1m0s ago"},
		"older than --max-age":  {compiled, created.Add(6 * time.Minute), 5 * time.Minute, "v1", "more than --max-age 5m0s"},
		"in the future":         {compiled, created.Add(-2 * time.Minute), time.Hour, "v1", "made in the future"},
		"another fwpush":        {compiled, created, time.Hour, "v2", "it was made by fwpush v1, and this is fwpush v2"},
		"the inventory changed": {changed, created, time.Hour, "v1", "the inventory /srv/site.toml has changed since the plan was made"},
	} {
		err := p.Check(tc.compiled, tc.now, tc.maxAge, tc.version)
		var r *Refused
		if !errors.As(err, &r) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, tc.want)
		}
	}
	// A policy that is not the plan's, the inventory the same (another
	// fwpush compiling otherwise, say).
	other := *p
	other.Hosts = append([]*change.Change(nil), p.Hosts...)
	c := *other.Hosts[0]
	c.Digest = "sha256:other"
	other.Hosts[0] = &c
	if err := other.Check(compiled, created, time.Hour, "v1"); err == nil || !strings.Contains(err.Error(), "compiles to another one than the plan's") {
		t.Errorf("a policy that is not the plan's: %v", err)
	}
}
