package change

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// fwpush's ipsets on a host: those named with policy.SetPrefix ("fwp-")
// are its own, the ones an apply loads before it swaps them in are named
// with TempPrefix ("fwq-", as long: the names stay within ipset's 31
// characters), and every other set is other software's, never read,
// compared or touched. docs/sets.md tells how an apply changes sets.

// TempPrefix begins the name of the sets an apply loads with the new
// members, before it swaps them with the live ones: fwpush's too. Only one
// run at a time changes a host (the host lock), from its apply to its
// confirm or rollback, so the temporary sets of two runs never meet; the
// ones a run left behind (killed half-way) are destroyed by the next apply.
const TempPrefix = "fwq-"

// SetDiff is how one of fwpush's sets on the host differs from the
// policy's.
type SetDiff struct {
	Name string `json:"name"`
	// Create: the policy's set is not on the host; Destroy: the host's
	// set is no longer the policy's. Options: its create options differ
	// (a larger maxelem), and it is swapped for one made anew.
	Create  bool `json:"create,omitempty"`
	Destroy bool `json:"destroy,omitempty"`
	Options bool `json:"options,omitempty"`
	// Added and Removed are the members the host's set lacks and those it
	// has but should not (as ipset prints them), sorted; every member for
	// a set created or destroyed.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// SetDocs are the `ipset restore` documents of an apply that changes
// fwpush's sets, each run at its step (runner/remote/scripts):
//
//   - Stage, before the guard is armed and before iptables tests the
//     rules (rules that match a set load only once it exists): the
//     temporary sets of an earlier run destroyed, each set to update loaded
//     in full under its temporary name, each new set created with its
//     members under its own name. Nothing matches any of them yet.
//   - Swap, by the guard, before the rules: each set to update swapped
//     with its temporary one, in place, so that the rules that match it
//     see the new members at once and the temporary name holds the old
//     ones. A swap is its own inverse: the rollback runs Swap again (after
//     the old rules are back); ipset stops at the first line that fails,
//     so it undoes exactly what went through.
//   - Clean: what Stage made destroyed, once the old rules and sets are
//     back (a failure, a rollback).
//   - Drop, once the rules are confirmed: the old members (now under the
//     temporary names) and the sets no rule matches any more destroyed.
//
// Every destroy is "-exist": a set already gone is no error.
type SetDocs struct {
	Stage string `json:"stage"`
	Swap  string `json:"swap,omitempty"`
	Clean string `json:"clean,omitempty"`
	Drop  string `json:"drop,omitempty"`
}

// StageSets is the stage of a host whose sets fwpush cannot change.
const StageSets = "sets"

// tempName is the temporary name of one of fwpush's sets.
func tempName(name string) string { return TempPrefix + strings.TrimPrefix(name, policy.SetPrefix) }

// liveSets reads fwpush's sets off the facts: its own (by name), and the
// names of the temporary ones left behind.
func liveSets(f live.Facts) (own []*policy.Set, temp []string, err error) {
	sets, err := policy.ParseSets(f.Sets)
	if err != nil {
		return nil, nil, fmt.Errorf("ipset save: %w", err)
	}
	for _, s := range sets {
		switch {
		case strings.HasPrefix(s.Name, policy.SetPrefix):
			own = append(own, s)
		case strings.HasPrefix(s.Name, TempPrefix):
			temp = append(temp, s.Name)
		}
	}
	return own, temp, nil
}

// setsPreflight refuses a host whose sets cannot be read or loaded: the
// policy has sets and ipset failed. A host with no ipset has no sets yet:
// the apply installs the ipset package first (Documents.InstallIPSet), as
// the persist installs ipset-persistent.
func setsPreflight(pol *roles.Policy, f live.Facts) error {
	if len(pol.Sets) == 0 || !f.IPSet {
		return nil
	}
	if f.SetsFailed {
		return fmt.Errorf("ipset failed: %s", f.SetsError)
	}
	if _, _, err := liveSets(f); err != nil {
		return err
	}
	return nil
}

// compareSets fills in what c says of the host's sets: how fwpush's
// differ from the policy's, the members added and removed, and their diff.
// It returns the sets' documents for an apply (nil when they are the
// same), and why they cannot be changed, if they cannot. A host that
// cannot tell its sets (no ipset, or ipset failed) and whose policy has
// none is left as it is.
func compareSets(c *Change, pol *roles.Policy, f live.Facts) (*SetDocs, *Refusal) {
	if !f.IPSet && len(pol.Sets) == 0 || f.SetsFailed {
		return nil, nil // setsPreflight refused a policy with sets
	}
	own, temp, err := liveSets(f) // none without ipset: the apply installs it
	if err != nil {
		return nil, &Refusal{Stage: StagePreflight, Reason: err.Error()}
	}
	diffs := policy.DiffSets(own, pol.Sets)
	if len(diffs) == 0 {
		return nil, nil
	}
	live := map[string]*policy.Set{}
	for _, s := range own {
		live[s.Name] = s
	}
	want := map[string]*policy.Set{}
	for _, s := range pol.Sets {
		want[s.Name] = s
	}
	var refuse []string
	for _, d := range diffs {
		sd := SetDiff{Name: d.Name, Create: d.Create, Destroy: d.Destroy, Options: d.Recreate, Added: d.Added, Removed: d.Removed}
		c.Sets = append(c.Sets, sd)
		c.MembersAdded += len(d.Added)
		c.MembersRemoved += len(d.Removed)
		if l, w := live[d.Name], want[d.Name]; d.Recreate && (l.Type != w.Type || l.Family != w.Family) {
			refuse = append(refuse, fmt.Sprintf("set %s is %s (%s) on the host and %s (%s) in the policy", d.Name, l.Type, l.Family, w.Type, w.Family))
		}
	}
	c.SetsDiff = udiff.Unified(c.Host+" live sets", c.Host+" desired sets", policy.CanonicalSets(own), policy.CanonicalSets(pol.Sets))
	if len(refuse) > 0 {
		return nil, &Refusal{Stage: StageSets, Reason: strings.Join(refuse, "; ") +
			": ipset changes neither the type nor the family of a set, nor swaps sets that differ in them; remove the rules that match it and destroy it (ipset destroy NAME), then run again"}
	}
	return setDocs(diffs, want, temp), nil
}

// setDocs renders the documents that take the host's sets to the wanted
// ones (see SetDocs); temp are the temporary sets found on the host.
func setDocs(diffs []policy.SetChange, want map[string]*policy.Set, temp []string) *SetDocs {
	var stage, swap, clean, drop strings.Builder
	var made []string // in the order Stage makes them
	for _, d := range diffs {
		switch {
		case d.Destroy:
		case d.Create:
			made = append(made, d.Name)
		default:
			// A temporary set of an earlier run that has this name goes
			// first: it holds what that run loaded.
			name := tempName(d.Name)
			if !slices.Contains(temp, name) {
				temp = append(temp, name)
			}
			made = append(made, name)
		}
	}
	for _, t := range temp {
		stage.WriteString("destroy " + t + " -exist\n")
	}
	for _, d := range diffs {
		switch {
		case d.Destroy:
			drop.WriteString("destroy " + d.Name + " -exist\n")
		case d.Create:
			stage.Write(policy.RestoreSets([]*policy.Set{want[d.Name]}))
		default:
			s := *want[d.Name]
			s.Name = tempName(d.Name)
			stage.Write(policy.RestoreSets([]*policy.Set{&s}))
			swap.WriteString("swap " + s.Name + " " + d.Name + "\n")
		}
	}
	for _, name := range made {
		clean.WriteString("destroy " + name + " -exist\n")
	}
	// The old members first: no rule ever matches them.
	var old strings.Builder
	for _, d := range diffs {
		if !d.Create && !d.Destroy {
			old.WriteString("destroy " + tempName(d.Name) + " -exist\n")
		}
	}
	return &SetDocs{Stage: stage.String(), Swap: swap.String(), Clean: clean.String(), Drop: old.String() + drop.String()}
}

// SetsFile is /etc/iptables/ipsets as the host of pol should have it, from
// what it holds now (current): the lines of other software's sets as they
// are, then the policy's sets (roles.Policy.IPSets). fwpush writes the file
// itself (it never runs `netfilter-persistent save`, which would save
// every set); the lines of sets that are not fwpush's stay, so that what
// someone else persisted there still loads at boot. "" when the file
// holds nothing of fwpush's and the policy has no sets: it is left alone.
func SetsFile(current string, pol *roles.Policy) string {
	others, mine := otherSets(current)
	if !mine && len(pol.Sets) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(others)
	if others != "" && !strings.HasSuffix(others, "\n") {
		b.WriteByte('\n')
	}
	b.Write(pol.IPSets())
	if b.Len() == 0 {
		// An empty document keeps the file: this one says there is none.
		return "# fwpush: no sets\n"
	}
	return b.String()
}

// SetsFirst is /etc/iptables/ipsets as it must be while rules.v4 and
// rules.v6 are replaced: file (the one wanted, see SetsFile), then the
// lines in current (the file there now) of the sets that the rules
// persisted now (persisted4, persisted6) match and file does not make.
// The files are renamed into place one by one: with file alone first, a
// host that stopped before the rules files were renamed would boot with
// rules that match a set no longer made, which iptables-restore refuses
// whole (the host would come up with no firewall); with file alone last,
// with new rules whose new sets are not made. Written first, this one
// makes the sets of the old rules and of the new ones; file replaces it
// once both rules files are in place. "" when file already makes every
// set the persisted rules match.
func SetsFirst(current, file, persisted4, persisted6 string) string {
	made := map[string]bool{}
	for line := range strings.Lines(file) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "create" {
			made[f[1]] = true
		}
	}
	missing := map[string]bool{}
	for _, doc := range []string{persisted4, persisted6} {
		for line := range strings.Lines(doc) {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "--match-set" && !made[f[i+1]] {
					missing[f[i+1]] = true
				}
			}
		}
	}
	if len(missing) == 0 {
		return ""
	}
	var b strings.Builder
	for line := range strings.Lines(current) {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "create" || f[0] == "add") && missing[f[1]] {
			b.WriteString(strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	if b.Len() == 0 {
		return "" // current does not make them either: nothing to keep
	}
	head := file
	if head != "" && !strings.HasSuffix(head, "\n") {
		head += "\n"
	}
	return head + b.String()
}

// otherSets is an ipset save document (/etc/iptables/ipsets) without the
// lines of fwpush's sets (fwp-, fwq-), and whether it had any.
func otherSets(doc string) (others string, mine bool) {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if f := strings.Fields(line); len(f) >= 2 && (strings.HasPrefix(f[1], policy.SetPrefix) || strings.HasPrefix(f[1], TempPrefix)) {
			mine = true
			continue
		}
		b.WriteString(line)
	}
	return b.String(), mine
}

// unknownSets lists the sets that are not fwpush's and that the rules of
// its own chains (the built-in chains and the policy's; not the preserved
// ones, nor the unknown ones) match, each once, in order: an apply would
// remove those rules, and fwpush removes nothing it does not know.
func unknownSets(splits ...policy.Split) []string {
	var out []string
	for _, s := range splits {
		for line := range strings.SplitSeq(s.Own, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "-A" || slices.Contains(s.Unknown, f[1]) {
				continue
			}
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "--match-set" && !strings.HasPrefix(f[i+1], policy.SetPrefix) && !slices.Contains(out, f[i+1]) {
					out = append(out, f[i+1])
				}
			}
		}
	}
	return out
}

// mayDropSets decides whether the apply may remove the rules of fwpush's
// chains that match sets that are not fwpush's: only with --force-own
// (noted in c). The sets themselves are never touched.
func mayDropSets(c *Change, o Options) *Refusal {
	if len(c.UnknownSets) == 0 {
		return nil
	}
	sets := strings.Join(c.UnknownSets, ", ")
	if o.ForceOwn {
		c.Forced = append(c.Forced, "--force-own removes the rules of fwpush's chains that match the sets "+sets+" (the sets stay)")
		return nil
	}
	return &Refusal{Stage: StageUnknownSets, Reason: fmt.Sprintf("the rules of fwpush's own chains match %s, which %s not fwpush's (no %s prefix), and the policy does not: fwpush removes nothing it does not know; "+
		"move those rules into a chain of their own that a preserve pattern keeps, or remove them with --force-own", sets, isAre(len(c.UnknownSets)), policy.SetPrefix)}
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// setsMatch reports whether every set of the policy is on the host as the
// policy has it (sets fwpush no longer wants may be there still: the
// next apply destroys them).
func setsMatch(pol *roles.Policy, f live.Facts) bool {
	if len(pol.Sets) == 0 {
		return true
	}
	if !f.IPSet || f.SetsFailed {
		return false
	}
	own, _, err := liveSets(f)
	if err != nil {
		return false
	}
	for _, d := range policy.DiffSets(own, pol.Sets) {
		if !d.Destroy {
			return false
		}
	}
	return true
}
