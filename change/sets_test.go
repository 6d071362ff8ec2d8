package change

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// The fixtures with sets (testdata/README.md): db-1's policy with sets,
// rendered in policy-sets/, and live rules and sets as iptables-save and
// ipset printed them on a real kernel (live/sets/, made by sets.sh).

// policyWithSets is host's policy with sets, as rendered in
// testdata/policy-sets.
func policyWithSets(t *testing.T, inv *inventory.Inventory, host string) *roles.Policy {
	t.Helper()
	pol := policyOf(t, inv, host)
	pol.V4 = []byte(read(t, "policy-sets/"+host+".rules.v4"))
	pol.V6 = []byte(read(t, "policy-sets/"+host+".rules.v6"))
	sets, err := policy.ParseSets(read(t, "policy-sets/"+host+".ipsets"))
	if err != nil {
		t.Fatal(err)
	}
	pol.Sets = sets
	return pol
}

// withSets is what a Debian host with ipset and ipset-persistent tells
// when it runs the rules and sets of live/sets/STATE.
func withSets(t *testing.T, h *inventory.Host, state string) live.Facts {
	t.Helper()
	f := debian(t, h, "")
	f.V4, f.V6 = read(t, "live/sets/"+state+".v4"), read(t, "live/sets/"+state+".v6")
	f.IPSet, f.PersistentSets = true, true
	f.Sets = read(t, "live/sets/"+state+".ipset")
	return f
}

// persistedSets: rules.v4, rules.v6, /etc/iptables/ipsets and the record
// of what was applied are pol's.
func persistedSets(pol *roles.Policy) func(*live.Facts) {
	return func(f *live.Facts) {
		persisted(pol)(f)
		f.PersistedSets = string(pol.IPSets())
	}
}

// setsGist is what a case with sets asserts by hand, besides gist.
type setsGist struct {
	Gist                         gist
	Sets                         []SetDiff
	MembersAdded, MembersRemoved int
	UnknownSets                  []string
	PersistSets                  string // "ipsets" for the policy's document
	InstallSets                  bool
	InstallIPSet                 bool // the apply installs the ipset package first
}

func setsGistOf(c Change, pol *roles.Policy) setsGist {
	g := setsGist{Gist: gistOf(c, pol), Sets: c.Sets, MembersAdded: c.MembersAdded, MembersRemoved: c.MembersRemoved,
		UnknownSets: c.UnknownSets, PersistSets: c.Persist.Sets, InstallSets: c.Persist.InstallSets}
	g.InstallIPSet = c.Apply != nil && c.Apply.InstallIPSet
	if g.PersistSets == string(pol.IPSets()) {
		g.PersistSets = "ipsets"
	}
	g.Gist.Persist.Sets, g.Gist.Persist.InstallSets = "", false
	return g
}

func TestDecideSets(t *testing.T) {
	inv := loadFleet(t)
	const blocklist = "create blocklist hash:net family inet hashsize 1024 maxelem 65536\nadd blocklist 192.0.2.0/24\n"
	app2 := []SetDiff{{Name: "fwp-app-4", Added: []string{"198.18.0.22"}}}
	for _, tc := range []struct {
		name   string
		state  string // live/sets/STATE.v4, .v6 and .ipset
		set    func(pol *roles.Policy, f *live.Facts)
		opts   Options
		want   setsGist
		reason string
	}{
		{name: "sets applied and persisted", state: "applied", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			want: setsGist{Gist: gist{Action: None, Persisted: true}}},
		// An app server added to the fleet: the rules are the same, the
		// set gains a member; the apply swaps it in, and the file that
		// loads it at boot is written again.
		{name: "sets: a new app server changes members only", state: "before-app-2",
			set: func(pol *roles.Policy, f *live.Facts) {
				persistedSets(pol)(f)
				f.PersistedSets = strings.Replace(f.PersistedSets, "add fwp-app-4 198.18.0.22\n", "", 1)
				f.Applied = "sha256:older"
			},
			want: setsGist{Gist: gist{Action: Apply, Persist: Persist{Record: true}, Persisted: false}, Sets: app2, MembersAdded: 1, PersistSets: "ipsets"}},
		// A member added by hand to fwpush's set is drift, repaired.
		{name: "sets: a member added by hand", state: "drift", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			want: setsGist{Gist: gist{Action: RepairDrift, Persisted: true}, Sets: []SetDiff{{Name: "fwp-app-4", Removed: []string{"203.0.113.9"}}}, MembersRemoved: 1}},
		// The first run with sets, over the policy of one rule per
		// address: the set is made, one rule replaces two; the set of
		// other software is neither read nor touched.
		{name: "sets: first apply over the per-address policy", state: "per-address",
			set: func(pol *roles.Policy, f *live.Facts) {
				persisted(pol)(f)
				f.Persisted4, f.Persisted6, f.Applied = read(t, "policy/db-1.rules.v4"), read(t, "policy/db-1.rules.v6"), "sha256:older"
				f.PersistedSets = blocklist
			},
			want: setsGist{Gist: gist{Action: Apply, Added: 1, Removed: 2, Persist: Persist{V4: "rules.v4", Record: true}},
				Sets: []SetDiff{{Name: "fwp-app-4", Create: true, Added: []string{"198.18.0.21", "198.18.0.22"}}}, MembersAdded: 2,
				PersistSets: blocklist + "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n"}},
		// A killed apply left a temporary set, and a set no rule matches
		// is still there: the apply destroys both, and changes no rule.
		{name: "sets: what a killed apply left", state: "leftovers", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			want: setsGist{Gist: gist{Action: RepairDrift, Persisted: true}, Sets: []SetDiff{{Name: "fwp-old-4", Destroy: true, Removed: []string{"198.18.0.41"}}}, MembersRemoved: 1}},
		// A rule in fwpush's INPUT matches a set of other software: the
		// apply would remove it, which only --force-own does.
		{name: "sets: fwpush's chain matches another program's set", state: "blocklist", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			want:   setsGist{Gist: gist{Action: RepairDrift, Stage: StageUnknownSets, Removed: 1, Persisted: true}, UnknownSets: []string{"blocklist"}},
			reason: "the rules of fwpush's own chains match blocklist, which is not fwpush's (no fwp- prefix), and the policy does not: fwpush removes nothing it does not know; move those rules into a chain of their own that a preserve pattern keeps, or remove them with --force-own"},
		{name: "sets: another program's set let go with --force-own", state: "blocklist", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			opts: Options{ForceOwn: true},
			want: setsGist{Gist: gist{Action: RepairDrift, Removed: 1, Persisted: true, Forced: 1}, UnknownSets: []string{"blocklist"}}},
		// ipset cannot make a set another type in place.
		{name: "sets: a set of another type", state: "wrong-type", set: func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f) },
			want:   setsGist{Gist: gist{Action: Refused, Stage: StageSets}},
			reason: "set fwp-app-4 is hash:net (inet) on the host and hash:ip (inet) in the policy: ipset changes neither the type nor the family of a set"},
		{name: "sets: ipset-persistent missing", state: "applied",
			set:  func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f); f.PersistentSets = false },
			want: setsGist{Gist: gist{Action: PersistOnly}, InstallSets: true}},
		{name: "sets: the file that loads them at boot is gone", state: "applied",
			set:  func(pol *roles.Policy, f *live.Facts) { persistedSets(pol)(f); f.PersistedSets = "" },
			want: setsGist{Gist: gist{Action: PersistOnly}, PersistSets: "ipsets"}},
		// The first run with sets on a host without the ipset package:
		// the apply installs it before it stages the set, as the
		// persist installs ipset-persistent.
		{name: "sets: no ipset", state: "per-address",
			set: func(pol *roles.Policy, f *live.Facts) {
				persisted(pol)(f)
				f.Persisted4, f.Persisted6, f.Applied = read(t, "policy/db-1.rules.v4"), read(t, "policy/db-1.rules.v6"), "sha256:older"
				f.IPSet, f.Sets, f.PersistentSets = false, "", false
			},
			want: setsGist{Gist: gist{Action: Apply, Added: 1, Removed: 2, Persist: Persist{V4: "rules.v4", Record: true}},
				Sets: []SetDiff{{Name: "fwp-app-4", Create: true, Added: []string{"198.18.0.21", "198.18.0.22"}}}, MembersAdded: 2,
				PersistSets: "ipsets", InstallSets: true, InstallIPSet: true}},
		{name: "sets: ipset failed", state: "applied",
			set: func(pol *roles.Policy, f *live.Facts) {
				persistedSets(pol)(f)
				f.SetsFailed, f.SetsError, f.Sets = true, "ipset v7.17: Kernel error received: Operation not permitted", ""
			},
			want:   setsGist{Gist: gist{Action: Refused, Stage: StagePreflight}},
			reason: "ipset failed: ipset v7.17: Kernel error received: Operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := policyWithSets(t, inv, "db-1")
			f := withSets(t, pol.Host, tc.state)
			if tc.set != nil {
				tc.set(pol, &f)
			}
			got := Decide(inv, pol, f, tc.opts)
			if diff := cmp.Diff(tc.want, setsGistOf(got, pol)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			switch {
			case tc.reason == "" && got.Refusal != nil:
				t.Errorf("refused: %s", got.Refusal.Reason)
			case tc.reason != "" && (got.Refusal == nil || !strings.Contains(got.Refusal.Reason, tc.reason)):
				t.Errorf("refusal %+v, want one saying %q", got.Refusal, tc.reason)
			}
			checkShape(t, got, pol)
			if (got.Apply != nil && got.Apply.Sets != nil) != (len(got.Sets) > 0 && got.Action != Refused) {
				t.Errorf("%d sets differ, and the apply's set documents are %+v", len(got.Sets), got.Apply)
			}
			if (got.SetsDiff != "") != (len(got.Sets) > 0) {
				t.Errorf("%d sets differ, and their diff is %q", len(got.Sets), got.SetsDiff)
			}
			golden(t, "golden/"+fileName(tc.name)+".json", got)
		})
	}
}

// The documents of a change of members: the new members loaded under the
// temporary name, swapped in, the temporary set (the old members after the
// swap) destroyed once confirmed, or with what the stage made if the apply
// fails or rolls back.
func TestSetDocs(t *testing.T) {
	inv := loadFleet(t)
	pol := policyWithSets(t, inv, "db-1")
	for _, tc := range []struct {
		state string
		want  SetDocs
	}{
		{"before-app-2", SetDocs{
			Stage: "destroy fwq-app-4 -exist\ncreate fwq-app-4 hash:ip family inet -exist\nadd fwq-app-4 198.18.0.21\nadd fwq-app-4 198.18.0.22\n",
			Swap:  "swap fwq-app-4 fwp-app-4\n",
			Clean: "destroy fwq-app-4 -exist\n",
			Drop:  "destroy fwq-app-4 -exist\n",
		}},
		{"per-address", SetDocs{
			Stage: "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n",
			Clean: "destroy fwp-app-4 -exist\n",
		}},
		{"leftovers", SetDocs{
			Stage: "destroy fwq-app-4 -exist\n",
			Drop:  "destroy fwp-old-4 -exist\n",
		}},
	} {
		t.Run(tc.state, func(t *testing.T) {
			c := Decide(inv, pol, withSets(t, pol.Host, tc.state), Options{})
			if c.Apply == nil || c.Apply.Sets == nil {
				t.Fatalf("no set documents: %+v", c)
			}
			if diff := cmp.Diff(tc.want, *c.Apply.Sets); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The digest covers the sets: a member added by hand is drift of the
// policy applied, another member is another policy; a policy without sets
// has the digest it had before fwpush had sets.
func TestDigestCoversSets(t *testing.T) {
	inv := loadFleet(t)
	pol := policyWithSets(t, inv, "db-1")
	other := *pol
	sets, err := policy.ParseSets(strings.Replace(string(pol.IPSets()), "198.18.0.22", "198.18.0.23", 1))
	if err != nil {
		t.Fatal(err)
	}
	other.Sets = sets
	if Digest(pol) == Digest(&other) {
		t.Error("policies whose sets differ have the same digest")
	}
	plain := *pol
	plain.Sets = nil
	if got, want := Digest(&plain), "sha256:"; !strings.HasPrefix(got, want) || got == Digest(pol) {
		t.Errorf("a policy without its sets has digest %s, as with them", got)
	}
}

// Other software's sets in /etc/iptables/ipsets stay there, as they are;
// fwpush's are replaced by the policy's.
func TestSetsFile(t *testing.T) {
	inv := loadFleet(t)
	pol := policyWithSets(t, inv, "db-1")
	none := *pol
	none.Sets = nil
	const other = "create blocklist hash:net family inet\nadd blocklist 192.0.2.0/24\n"
	for _, tc := range []struct {
		name, current string
		pol           *roles.Policy
		want          string
	}{
		{"none yet", "", pol, string(pol.IPSets())},
		{"fwpush's older sets", "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\ncreate fwp-old-4 hash:ip family inet -exist\n", pol, string(pol.IPSets())},
		{"another program's kept first", other + "create fwp-app-4 hash:ip family inet\n", pol, other + string(pol.IPSets())},
		{"no newline at its end", strings.TrimSuffix(other, "\n"), pol, other + string(pol.IPSets())},
		{"no sets, nothing of fwpush's: left alone", other, &none, ""},
		{"no sets any more: fwpush's go", other + "create fwp-app-4 hash:ip family inet\n", &none, other},
		{"no sets any more, nothing else", "create fwp-app-4 hash:ip family inet\n", &none, "# fwpush: no sets\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SetsFile(tc.current, tc.pol); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// An earlier run's apply is kept when it left the policy's sets in place
// (a set the policy no longer has may linger: the next apply drops it).
func TestKeepSets(t *testing.T) {
	inv := loadFleet(t)
	pol := policyWithSets(t, inv, "db-1")
	ok := live.Guard{Token: "0badc0de", Status: "ok"}
	for _, tc := range []struct {
		state string
		want  bool
	}{{"applied", true}, {"leftovers", true}, {"before-app-2", false}, {"drift", false}} {
		t.Run(tc.state, func(t *testing.T) {
			if got := Keep(inv, pol, withSets(t, pol.Host, tc.state), ok); got != tc.want {
				t.Errorf("Keep = %v, want %v", got, tc.want)
			}
		})
	}
}

// The ipsets written first keep the sets the persisted rules match that
// the new file no longer makes, and only those; none when the new file
// makes every one.
func TestSetsFirst(t *testing.T) {
	const (
		other   = "create blocklist hash:net family inet\nadd blocklist 192.0.2.0/24\n"
		oldSet  = "create fwp-old-4 hash:ip family inet -exist\nadd fwp-old-4 198.18.0.30\n"
		appSet  = "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\n"
		oldRule = "-A INPUT -p tcp -m set --match-set fwp-old-4 src -m tcp --dport 3306 -j ACCEPT\n"
		appRule = "-A INPUT -p tcp -m set --match-set fwp-app-4 src -j ACCEPT\n"
		v6      = "*filter\nCOMMIT\n"
	)
	for _, tc := range []struct {
		name                 string
		current, file, v4, w string
	}{
		{"a set removed", other + oldSet + appSet, other + appSet, "*filter\n" + oldRule + appRule + "COMMIT\n", other + appSet + oldSet},
		{"every set still made", other + appSet, other + appSet + oldSet, "*filter\n" + appRule + "COMMIT\n", ""},
		{"no sets any more", oldSet, "# fwpush: no sets\n", "*filter\n" + oldRule + "COMMIT\n", "# fwpush: no sets\n" + oldSet},
		{"the old file did not make it either", appSet, other, "*filter\n" + oldRule + "COMMIT\n", ""},
		{"no rules persisted", oldSet, appSet, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SetsFirst(tc.current, tc.file, tc.v4, v6); got != tc.w {
				t.Errorf("got\n%s\nwant\n%s", got, tc.w)
			}
		})
	}
}
