package runner

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// What the fake hosts do of ipset: their sets are a save (what `ipset
// save` prints of fwpush's sets), which the documents of an apply change
// as ipset restore would (see change.SetDocs): create (-exist), add,
// destroy (-exist) and swap, stopping at the first line that fails.

// fakeSet is one set of a fake host.
type fakeSet struct {
	create  string // what follows the name on its create line
	members []string
}

// ipsetRestore is save once ipset restore has run doc.
func ipsetRestore(save, doc string) (string, error) {
	sets := map[string]*fakeSet{}
	var order []string
	if _, err := ipsetRun(sets, &order, save); err != nil {
		return save, fmt.Errorf("the fake's own save: %w", err)
	}
	n, err := ipsetRun(sets, &order, doc)
	var b strings.Builder
	slices.Sort(order)
	for _, name := range order {
		s := sets[name]
		fmt.Fprintf(&b, "create %s %s\n", name, s.create)
		for _, m := range s.members {
			fmt.Fprintf(&b, "add %s %s\n", name, m)
		}
	}
	if err != nil {
		return b.String(), fmt.Errorf("ipset v7.17: Error in line %d: %w", n, err)
	}
	return b.String(), nil
}

// ipsetRun runs the lines of doc on sets (their names in order), up to
// the first that fails, whose number it returns.
func ipsetRun(sets map[string]*fakeSet, order *[]string, doc string) (int, error) {
	n := 0
	for line := range strings.Lines(doc) {
		n++
		f := strings.Fields(line)
		exist := slices.Contains(f, "-exist")
		f = slices.DeleteFunc(f, func(s string) bool { return s == "-exist" })
		if len(f) < 2 {
			return n, fmt.Errorf("%q?", line)
		}
		s, ok := sets[f[1]]
		switch f[0] {
		case "create":
			if ok {
				if !exist {
					return n, fmt.Errorf("set %s exists", f[1])
				}
				continue
			}
			sets[f[1]] = &fakeSet{create: strings.Join(f[2:], " ")}
			*order = append(*order, f[1])
		case "add":
			if !ok || len(f) != 3 {
				return n, fmt.Errorf("no set %s", f[1])
			}
			if !slices.Contains(s.members, f[2]) {
				s.members = append(s.members, f[2])
			}
		case "destroy":
			if !ok {
				if !exist {
					return n, fmt.Errorf("no set %s", f[1])
				}
				continue
			}
			delete(sets, f[1])
			*order = slices.DeleteFunc(*order, func(s string) bool { return s == f[1] })
		case "swap":
			t, tok := sets[f[len(f)-1]]
			if !ok || !tok || len(f) != 3 {
				return n, fmt.Errorf("cannot swap %s", line)
			}
			sets[f[1]], sets[f[2]] = t, s
		default:
			return n, fmt.Errorf("%q?", line)
		}
	}
	return n, nil
}

// A new app server changes the members of the db server's set and
// nothing else: the run applies it as a change of sets, no rule added or
// removed; the sets end as the policy's, with no temporary set left; a
// member added by hand after that is drift, repaired.
func TestPushSetsMembership(t *testing.T) {
	plan, fleet := newTestPlan(t)
	runAll(t, plan, fleet, RunOptions{})
	src, err := os.ReadFile("testdata/push.toml")
	if err != nil {
		t.Fatal(err)
	}
	grown, err := inventory.Parse("push.toml", append(src, "\n[hosts.app-3]\nrole       = \"app\"\nprivate_ip = \"198.18.0.23\"\n"...))
	if err != nil {
		t.Fatal(err)
	}
	plan2, err := roles.Compile(grown, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := grown.Host("db-1")
	h := fleet.host("db-1")
	rules := h.state().Live4
	r := runHosts(t, plan2, []*inventory.Host{db}, fleet, RunOptions{})["db-1"]
	want := []change.SetDiff{{Name: "fwp-app-4", Added: []string{"198.18.0.23"}}}
	if r.Status != Applied || r.Added+r.Removed != 0 || r.MembersAdded != 1 || r.MembersRemoved != 0 || !cmp.Equal(r.Sets, want) {
		t.Errorf("db-1: %s (%v), rules +%d -%d, members +%d -%d %+v; want applied, members only", r.Status, r.Err, r.Added, r.Removed, r.MembersAdded, r.MembersRemoved, r.Sets)
	}
	pol := policyOf(t, plan2, "db-1")
	if got, want := h.readFacts().Sets, h.ipset("", string(pol.IPSets())); got != want {
		t.Errorf("db-1's sets:\n%s\nwant the policy's:\n%s", got, want)
	}
	if h.state().Live4 != rules {
		t.Errorf("db-1's rules changed with its sets' members")
	}
	if f := h.state().Files[fileIPSets]; f != string(pol.IPSets()) {
		t.Errorf("/etc/iptables/ipsets:\n%s", f)
	}
	h.set(func(h *fakeHost) { h.sets = h.ipset(h.sets, "add fwp-app-4 203.0.113.9\n") })
	r = runHosts(t, plan2, []*inventory.Host{db}, fleet, RunOptions{})["db-1"]
	if r.Status != DriftRepaired || r.MembersRemoved != 1 {
		t.Errorf("db-1 with a member added by hand: %s (%v), members -%d; want drift repaired, one removed", r.Status, r.Err, r.MembersRemoved)
	}
	if r := runHosts(t, plan2, []*inventory.Host{db}, fleet, RunOptions{})["db-1"]; r.Status != Unchanged {
		t.Errorf("db-1 once repaired: %s (%v)", r.Status, r.Err)
	}
}
