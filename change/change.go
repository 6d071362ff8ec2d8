// Package change decides what a run does to one host. From the facts read
// on the host (package live) and the host's compiled policy it computes a
// Change: a plain value that says everything the run will do there — the
// documents to apply, what to persist, the diff and its counts, the
// chains it would remove — or that it will do nothing, or why it must not
// touch the host. The orchestration (runner) reads the host, calls Decide,
// and carries the Change out, step by step; --dry-run prints it; a saved
// plan holds it. Decisions only: no I/O, no clock, no logging.
//
// The shape is Terraform's (internal/plans): compute first, from what was
// read, a value that says what will be done; then carry it out.
package change

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// Action is what a Change does to a host.
type Action string

// The actions, as JSON writes them.
const (
	// None: the live rules are the policy and persisted: nothing to do.
	None Action = "none"
	// PersistOnly: the live rules are the policy, but the files that make
	// it survive a reboot (or iptables-persistent) are not in place.
	PersistOnly Action = "persist"
	// Apply: the policy is applied under the guard, then persisted.
	Apply Action = "apply"
	// RepairDrift is an Apply over rules that fwpush applied and someone
	// changed by hand since: the host records this very policy as applied.
	RepairDrift Action = "repair_drift"
	// Refused: the host cannot take the policy, or something else
	// manages its firewall; nothing else is decided (see Refusal).
	Refused Action = "refused"
)

// Change is what a run does to one host. Its JSON form is what a saved
// plan holds; its field names are stable.
type Change struct {
	Host   string `json:"host"`
	Role   string `json:"role"`
	Action Action `json:"action"`
	// Refusal, when set, is why the change must not be made. With Action
	// Refused, nothing more was decided. With an apply, the apply would
	// remove chains fwpush does not know (see Unknown): the change is
	// computed in full, as a dry run shows it, and a run refuses it.
	Refusal *Refusal `json:"refusal,omitempty"`
	// Digest identifies the policy (see Digest): what the host records
	// as applied once the change is made.
	Digest string `json:"digest"`
	// State identifies the host's firewall state that the change was
	// decided from (see State): a saved plan's change is made only on a
	// host whose state is still this.
	State string `json:"state"`
	// Apply holds the documents that iptables-restore --noflush loads
	// under the guard (for Apply and RepairDrift): the policy, flushing
	// the chains it owns, with the chains a preserve pattern keeps and
	// the jumps into them left in place (see policy.Split.Merge); and,
	// when fwpush's sets change, the ipset documents that change them.
	Apply *Documents `json:"apply,omitempty"`
	// Persist is what is written once the rules are confirmed (or at once,
	// for PersistOnly); empty when nothing is.
	Persist Persist `json:"persist"`
	// Persisted is set when rules.v4, rules.v6 and iptables-persistent
	// are in place already, before the change.
	Persisted bool `json:"persisted"`
	// Diff is the unified diff of the live rules that fwpush owns against
	// the policy, IPv4 then IPv6; "" when they are the same.
	Diff string `json:"diff,omitempty"`
	// Added and Removed count the rules (and chain policies), IPv4 and
	// IPv6, that the policy adds to and removes from the live ones.
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Sets are fwpush's sets on the host that differ from the policy's,
	// by name; none when they are the same. A change of members alone
	// (an app server added to the fleet) is a change of sets with no
	// rule added or removed.
	Sets []SetDiff `json:"sets,omitempty"`
	// MembersAdded and MembersRemoved count the members of Sets added and
	// removed.
	MembersAdded   int `json:"members_added,omitempty"`
	MembersRemoved int `json:"members_removed,omitempty"`
	// SetsDiff is the unified diff of fwpush's sets on the host against
	// the policy's, in their canonical form (policy.CanonicalSets); ""
	// when they are the same.
	SetsDiff string `json:"sets_diff,omitempty"`
	// Unknown are the live chains that neither the policy declares nor a
	// preserve pattern keeps: drift, which only --force-own removes.
	Unknown []string `json:"unknown_chains,omitempty"`
	// UnknownSets are the sets that are not fwpush's and that rules of
	// its own chains match: the apply would remove those rules, which
	// only --force-own does.
	UnknownSets []string `json:"unknown_sets,omitempty"`
	// Forced says what --force-own overrides on this host, one sentence
	// each.
	Forced []string `json:"forced,omitempty"`
	// Warnings say what else on the host decides packets that the policy
	// accepts (a host of the nftables backend: other tables' base chains
	// that drop at its hooks, legacy iptables rules), one sentence each.
	Warnings []string `json:"warnings,omitempty"`
	// Openings say, one sentence each, which rules of preserved chains
	// accept every packet, without any match, in a chain a built-in chain
	// jumps to (see policy.Openings): whatever the policy denies, those
	// packets get in. A run warns of them; with StrictPreserve they are
	// drift (their chains are not preserved).
	Openings []string `json:"preserved_openings,omitempty"`
}

// Documents are the IPv4 and IPv6 iptables-restore documents of a change,
// and its nft document, which makes the apply nft's (see remote.Apply),
// and the ipset documents of its sets when they change.
type Documents struct {
	V4 string `json:"v4"`
	V6 string `json:"v6"`
	// NFT makes table inet fwpush the policy's (a host of the nftables
	// backend), or deletes it (one moving back to iptables); V4 and V6
	// are then loaded only when not empty.
	NFT string `json:"nft,omitempty"`
	// InstallNFT installs the nftables package first, where nft is
	// missing.
	InstallNFT bool `json:"install_nftables,omitempty"`
	// InstallIPSet installs the ipset package first, before the sets are
	// staged: the host has no ipset, and the policy has sets.
	InstallIPSet bool     `json:"install_ipset,omitempty"`
	Sets         *SetDocs `json:"sets,omitempty"`
}

// Persist is what makes the policy survive a reboot. An empty document
// leaves that file as it is.
type Persist struct {
	V4 string `json:"v4,omitempty"` // /etc/iptables/rules.v4
	V6 string `json:"v6,omitempty"` // /etc/iptables/rules.v6
	// Sets is /etc/iptables/ipsets (see SetsFile).
	Sets string `json:"sets,omitempty"`
	// SetsFirst, when set, is /etc/iptables/ipsets as written before
	// rules.v4 and rules.v6 are replaced, Sets then going in after them:
	// Sets with the sets the rules persisted now match that Sets lacks
	// (see SetsFirst), so that a host that stops between two renames
	// boots with sets for whichever rules it has.
	SetsFirst string `json:"sets_first,omitempty"`
	// Record writes the change's Digest to /var/lib/fwpush/applied.
	Record bool `json:"record,omitempty"`
	// Install installs iptables-persistent (after the files), and
	// InstallSets ipset-persistent, its plugin that loads the sets.
	Install     bool `json:"install,omitempty"`
	InstallSets bool `json:"install_sets,omitempty"`
	// NFT is /etc/fwpush/fwpush.nft, Boot installs and enables the unit
	// that loads it at boot (the nftables backend).
	NFT  string `json:"nft,omitempty"`
	Boot bool   `json:"boot,omitempty"`
	// RemoveNFT removes fwpush.nft and its unit (a host moving back to
	// iptables), RemoveIPT rules.v4 and rules.v6 (one moving to
	// nftables).
	RemoveNFT bool `json:"remove_nft,omitempty"`
	RemoveIPT bool `json:"remove_iptables,omitempty"`
	// DropSets destroys fwpush's ipsets on a host moving to nftables
	// (an ipset restore document), RemoveSets removes
	// /etc/iptables/ipsets there when it held fwpush's sets only (else
	// Sets writes it without them).
	DropSets   string `json:"drop_sets,omitempty"`
	RemoveSets bool   `json:"remove_sets,omitempty"`
}

// Empty reports whether p writes nothing.
func (p Persist) Empty() bool { return p == Persist{} }

// Refusal is why a host must not be changed: the step that refuses it,
// as reports name it ("preflight", "backends", "other firewall",
// "unknown chains"), and the reason, which says what to do about it.
type Refusal struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
}

// Error is the reason.
func (r *Refusal) Error() string { return r.Reason }

// The stages that refuse a host.
const (
	StagePreflight     = "preflight"
	StageBackends      = "backends"
	StageOtherFirewall = "other firewall"
	StageUnknownChains = "unknown chains"
	StageUnknownSets   = "unknown sets"
)

// Options shape a decision.
type Options struct {
	// ForceOwn lets the change remove the chains no preserve pattern
	// keeps, and apply where another firewall manager is enabled: the
	// operator takes the filter table over.
	ForceOwn bool
	// StrictPreserve keeps no preserved chain that holds an opening (see
	// Change.Openings): such a chain is unknown, drift, which a run
	// refuses, or removes with ForceOwn.
	StrictPreserve bool
}

// Decide says what a run does to the host of pol, from the facts f read
// there: what it refuses first (the tools, interfaces and the SSH session
// the policy needs; another backend or firewall manager), then the
// comparison of the live rules that fwpush owns with the policy — the
// chains the host's role preserves (Docker's, fail2ban's) are neither
// compared nor touched, and any other chain the policy does not declare is
// drift — of fwpush's sets (named fwp-; other software's are not read)
// with the policy's, and of the persisted files with it. inv gives the
// preserve patterns and names the inventory in messages.
func Decide(inv *inventory.Inventory, pol *roles.Policy, f live.Facts, o Options) Change {
	h := pol.Host
	c := Change{Host: h.Name, Role: h.Role, Action: Refused, Digest: Digest(pol), State: State(inv, pol, f)}
	if h.Backend == inventory.NFTables {
		return decideNFT(inv, pol, f, c)
	}
	if err := preflight(h, pol, f); err != nil {
		c.Refusal = &Refusal{Stage: StagePreflight, Reason: err.Error()}
		return c
	}
	if c.Refusal = coexist(f, o, &c); c.Refusal != nil {
		return c
	}

	want4, want6 := policy.Canonical(string(pol.V4)), policy.Canonical(string(pol.V6))
	preserve := inv.Preserve(h.Role)
	canon4, canon6 := policy.Canonical(f.V4), policy.Canonical(f.V6)
	split4 := policy.SplitLive(canon4, want4, preserve)
	split6 := policy.SplitLive(canon6, want6, preserve)
	var distrusted []string
	c.Openings, distrusted = openings(policy.Openings(canon4, split4.Preserved), policy.Openings(canon6, split6.Preserved))
	if o.StrictPreserve && len(distrusted) > 0 {
		split4 = policy.SplitLiveExcept(canon4, want4, preserve, distrusted)
		split6 = policy.SplitLiveExcept(canon6, want6, preserve, distrusted)
	}
	live4, live6 := split4.Own, split6.Own
	c.Unknown = unknownChains(split4, split6)
	c.UnknownSets = unknownSets(split4, split6)
	a4, r4 := countChanges(live4, want4)
	a6, r6 := countChanges(live6, want6)
	c.Added, c.Removed = a4+a6, r4+r6
	rulesDiffer := live4 != want4 || live6 != want6
	if rulesDiffer {
		c.Diff = udiff.Unified(h.Name+" live IPv4", h.Name+" desired IPv4", live4, want4) +
			udiff.Unified(h.Name+" live IPv6", h.Name+" desired IPv6", live6, want6)
	}
	sets, refusal := compareSets(&c, pol, f)
	if refusal != nil {
		c.Action, c.Refusal = Refused, refusal
		c.Added, c.Removed, c.Unknown, c.UnknownSets, c.Diff = 0, 0, nil, nil, ""
		c.Sets, c.MembersAdded, c.MembersRemoved, c.SetsDiff = nil, 0, 0, ""
		return c
	}
	setsDiffer := sets != nil

	c.Persist = Persist{Install: !f.Persistent, InstallSets: len(pol.Sets) > 0 && !f.PersistentSets, Record: f.Applied != c.Digest}
	if f.Persisted4 != string(pol.V4) {
		c.Persist.V4 = string(pol.V4)
	}
	if f.Persisted6 != string(pol.V6) {
		c.Persist.V6 = string(pol.V6)
	}
	if file := SetsFile(f.PersistedSets, pol); file != "" && file != f.PersistedSets {
		c.Persist.Sets = file
		c.Persist.SetsFirst = SetsFirst(f.PersistedSets, file, f.Persisted4, f.Persisted6)
	}
	filesDiffer := c.Persist.V4 != "" || c.Persist.V6 != "" || c.Persist.Sets != ""
	c.Persisted = !filesDiffer && !c.Persist.Install && !c.Persist.InstallSets
	// What is left of the nftables backend goes with the next apply.
	c.Apply = &Documents{Sets: sets, InstallIPSet: !f.IPSet && len(pol.Sets) > 0}
	drifted := (rulesDiffer || setsDiffer) && f.Applied == c.Digest // what fwpush applied was changed by hand
	if releaseNFT(f, &c) {
		c.Persisted = false
		rulesDiffer = rulesDiffer || c.Apply.NFT != ""
	}
	switch {
	case !rulesDiffer && !setsDiffer && c.Persisted:
		// What fwpush recorded as applied is not worth a write of its own.
		c.Action, c.Persist, c.Apply = None, Persist{}, nil
		return c
	case !rulesDiffer && !setsDiffer:
		c.Action, c.Apply = PersistOnly, nil
		return c
	}
	c.Action = Apply
	if drifted {
		c.Action = RepairDrift
	}
	c.Apply.V4, c.Apply.V6 = split4.Merge(want4), split6.Merge(want6)
	c.Refusal = mayOwn(inv, h, o, &c, split4, split6)
	if c.Refusal != nil && c.Refusal.Stage == StageUnknownChains && o.StrictPreserve && len(distrusted) > 0 {
		c.Refusal.Reason = strictReason(distrusted, c.Unknown, c.Refusal.Reason)
	}
	if c.Refusal == nil {
		c.Refusal = mayDropSets(&c, o)
	}
	return c
}

// Keep decides the fate of the apply g that an earlier run left
// undecided on the host of pol, its run being gone: kept when it went well
// and left the rules that fwpush owns and its sets as the policy wants
// them, rolled back otherwise. f are the facts read with it.
func Keep(inv *inventory.Inventory, pol *roles.Policy, f live.Facts, g live.Guard) bool {
	if g.Status != "ok" {
		return false
	}
	if pol.Host.Backend == inventory.NFTables {
		if f.NFT == nil {
			return false
		}
		own, err := nft.Canonical(f.NFT.Own)
		return err == nil && pol.NFT != nil && own == pol.NFT.Canonical()
	}
	want4, want6 := policy.Canonical(string(pol.V4)), policy.Canonical(string(pol.V6))
	preserve := inv.Preserve(pol.Host.Role)
	return policy.SplitLive(policy.Canonical(f.V4), want4, preserve).Own == want4 &&
		policy.SplitLive(policy.Canonical(f.V6), want6, preserve).Own == want6 &&
		setsMatch(pol, f)
}

// Digest identifies a rendered policy, to tell drift (live rules or sets
// changed by hand after fwpush applied this policy) from a new policy: its
// canonical rules, and its sets' canonical form when it has any (a policy
// without sets has the digest it had before fwpush had sets).
func Digest(pol *roles.Policy) string {
	if pol.Host != nil && pol.Host.Backend == inventory.NFTables && pol.NFT != nil {
		return digestNFT(pol)
	}
	h := sha256.New()
	h.Write([]byte(policy.Canonical(string(pol.V4))))
	h.Write([]byte{0})
	h.Write([]byte(policy.Canonical(string(pol.V6))))
	if len(pol.Sets) > 0 {
		h.Write([]byte{0})
		h.Write([]byte(policy.CanonicalSets(pol.Sets)))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// countChanges counts rule lines in want but not in live (added) and in
// live but not in want (removed), as multisets. Chain policies count too.
func countChanges(live, want string) (added, removed int) {
	count := map[string]int{}
	for l := range strings.SplitSeq(live, "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":") {
			count[l]--
		}
	}
	for l := range strings.SplitSeq(want, "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":") {
			count[l]++
		}
	}
	for _, n := range count {
		if n > 0 {
			added += n
		} else {
			removed -= n
		}
	}
	return added, removed
}
