package change

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// The nftables backend owns table inet fwpush and nothing else: the
// decision compares the canonical form of that table as nft lists it
// with the policy's, and every other table is a fact, never touched. What
// other tables and iptables rules do to the packets fwpush's table
// accepts is said in warnings.

// decideNFT is Decide for a host of the nftables backend.
func decideNFT(inv *inventory.Inventory, pol *roles.Policy, f live.Facts, c Change) Change {
	h := pol.Host
	n := f.NFT
	if n == nil {
		n = &live.NFT{}
	}
	if err := preflightNFT(h, pol, f, n); err != nil {
		c.Refusal = &Refusal{Stage: StagePreflight, Reason: err.Error()}
		return c
	}
	c.Warnings = nftWarnings(f, n)

	own, err := nft.Canonical(n.Own)
	if err != nil {
		c.Refusal = &Refusal{Stage: StagePreflight, Reason: "fwpush cannot read what nft lists of table " + nft.Table + ": " + err.Error()}
		return c
	}
	want := pol.NFT.Canonical()
	c.Added, c.Removed = nft.Count(own, want)
	// A host that fwpush managed with iptables before gives the filter
	// table back in the same apply: what fwpush owned there goes, the
	// chains its role preserves stay.
	release4, release6, released, err := releaseFilter(inv, pol, f, n)
	if err != nil {
		c.Refusal = &Refusal{Stage: StageUnknownChains, Reason: err.Error()}
		return c
	}
	c.Removed += released
	rulesDiffer := own != want || release4 != "" || release6 != ""
	if own != want {
		c.Diff = udiff.Unified(h.Name+" live table "+nft.Table, h.Name+" desired table "+nft.Table, own, want)
	}
	if release4 != "" || release6 != "" {
		c.Diff += "# the filter table, which fwpush managed with iptables before, is given back (its chains but the preserved ones go)\n"
	}

	doc := string(pol.NFTDocument().Text)
	c.Persist = Persist{Record: f.Applied != c.Digest}
	if n.Persisted != doc {
		c.Persist.NFT = doc
	}
	c.Persist.Boot = !n.Boot
	c.Persist.RemoveIPT = fwpushIPTables(f, n) && (f.Persisted4 != "" || f.Persisted6 != "")
	c.Persist.DropSets, c.Persist.Sets, c.Persist.RemoveSets = oldSets(f, n)
	c.Persisted = c.Persist.NFT == "" && !c.Persist.Boot && !c.Persist.RemoveIPT &&
		c.Persist.DropSets == "" && c.Persist.Sets == "" && !c.Persist.RemoveSets
	switch {
	case !rulesDiffer && c.Persisted:
		c.Action, c.Persist = None, Persist{}
		return c
	case !rulesDiffer:
		c.Action = PersistOnly
		return c
	}
	c.Action = Apply
	if f.Applied == c.Digest {
		c.Action = RepairDrift
	}
	c.Apply = &Documents{V4: release4, V6: release6, NFT: doc, InstallNFT: !n.Tool}
	return c
}

// preflightNFT refuses a host of the nftables backend where the policy
// cannot work: nft could not list the tables, an interface the policy
// names is missing, or the policy would not accept fwpush's own session.
// nft itself may be missing: the apply installs it.
func preflightNFT(h *inventory.Host, pol *roles.Policy, f live.Facts, n *live.NFT) error {
	if pol.NFT == nil {
		return fmt.Errorf("the policy of host %s has no nftables table", h.Name)
	}
	if n.ListFailed {
		return fmt.Errorf("nft could not list the tables: %s", n.ListError)
	}
	return reachable(h, pol, f)
}

// fwpushIPTables reports whether fwpush managed the host with iptables
// before: it recorded a policy as applied, and has never persisted a
// table of nftables' there.
func fwpushIPTables(f live.Facts, n *live.NFT) bool {
	return strings.TrimSpace(f.Applied) != "" && n.Persisted == "" && n.Own == ""
}

// oldSets is what a host of the nftables backend, whose sets are in its
// table, still has of fwpush's ipsets from its iptables days, for the
// persist to remove once the table is confirmed (a rollback needs them:
// the old filter table's rules match them): the ipset restore document
// that destroys them, and /etc/iptables/ipsets without their lines
// (file), or removeFile when nothing else is left in it. Other
// software's sets, and their lines, stay.
func oldSets(f live.Facts, n *live.NFT) (drop, file string, removeFile bool) {
	var b strings.Builder
	for _, s := range n.OldSets {
		if strings.HasPrefix(s, policy.SetPrefix) || strings.HasPrefix(s, TempPrefix) {
			b.WriteString("destroy " + s + " -exist\n")
		}
	}
	others, mine := otherSets(f.PersistedSets)
	switch {
	case !mine:
	case slices.ContainsFunc(strings.Split(others, "\n"), func(l string) bool { l = strings.TrimSpace(l); return l != "" && !strings.HasPrefix(l, "#") }):
		file = others
	default:
		removeFile = true
	}
	return b.String(), file, removeFile
}

// releaseFilter is what gives the filter table back on a host fwpush
// managed with iptables before: for each family, the document that
// iptables-restore --noflush loads to open the table, removing the
// chains fwpush owned and keeping the preserved ones (and the jumps into
// them); "" for a family whose table is open already, and for every host
// fwpush did not manage with iptables. It counts the rules (and chain
// policies) that go.
func releaseFilter(inv *inventory.Inventory, pol *roles.Policy, f live.Facts, n *live.NFT) (string, string, int, error) {
	if !fwpushIPTables(f, n) {
		return "", "", 0, nil
	}
	open := policy.Canonical("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
	preserve := inv.Preserve(pol.Host.Role)
	var docs [2]string
	removed := 0
	for i, table := range []string{f.V4, f.V6} {
		live := policy.Canonical(table)
		if live == "" || policy.Open(live) {
			continue
		}
		s := policy.SplitLive(live, open, preserve)
		if len(s.Held) > 0 {
			return "", "", 0, fmt.Errorf("%s: a preserved chain jumps there: giving the filter table back would break that chain; keep %s with %s",
				strings.Join(s.Held, ", "), itThem(s.Held), preserveLine(inv, pol.Host, s.Held))
		}
		docs[i] = s.Merge(open)
		_, r := countChanges(s.Own, open)
		removed += r
	}
	return docs[0], docs[1], removed, nil
}

// nftWarnings are what a host of the nftables backend runs besides
// fwpush's table that decides packets too: base chains of other tables
// that drop at fwpush's hooks (a packet fwpush accepts is dropped there
// all the same), and iptables rules of the legacy backend, which packets
// go through as well.
func nftWarnings(f live.Facts, n *live.NFT) []string {
	var out []string
	// The filter table iptables-nft keeps, on a host moving from
	// iptables, is the one fwpush gives back in this apply: its drops
	// are fwpush's own, and go.
	released := fwpushIPTables(f, n) && f.Backend == "nf_tables"
	for _, t := range n.Tables {
		if released && t.Name == "filter" && (t.Family == "ip" || t.Family == "ip6") {
			continue
		}
		for _, ch := range t.Chains {
			if ch.Type == "filter" && ch.Policy == "drop" && slices.Contains([]string{"input", "forward", "output"}, ch.Hook) &&
				slices.Contains([]string{"inet", "ip", "ip6"}, t.Family) {
				out = append(out, fmt.Sprintf("table %s %s: base chain %s drops at the %s hook (priority %s, policy drop): what table %s accepts is dropped there too; open the port in that table as well",
					t.Family, t.Name, ch.Name, ch.Hook, ch.Priority, nft.Table))
			}
		}
	}
	var legacy4, legacy6 string
	switch {
	case f.Backend == "legacy":
		legacy4, legacy6 = f.V4, f.V6
	case f.OtherBackend == "legacy":
		legacy4, legacy6 = f.Other4, f.Other6
	}
	var held []string
	for _, o := range []struct{ family, doc string }{{"IPv4", legacy4}, {"IPv6", legacy6}} {
		if c := policy.Canonical(o.doc); c != "" && !policy.Open(c) {
			held = append(held, o.family+": "+describeTable(c))
		}
	}
	for _, m := range f.Managers {
		if m.Name == "nftables" {
			out = append(out, "nftables.service is "+m.How+": at boot fwpush's own unit loads table "+nft.Table+" after it, but a reload of it (systemctl reload nftables) runs /etc/nftables.conf's flush ruleset, which removes the table until the next run or boot")
			continue
		}
		out = append(out, m.Name+" is "+m.How+": it keeps rules of its own, which decide packets as well as table "+nft.Table+" (fwpush leaves them alone)")
	}
	if len(held) > 0 {
		out = append(out, "iptables-legacy holds filter rules on the host ("+strings.Join(held, "; ")+"): packets go through them as well as through table "+nft.Table+"; empty them (iptables-legacy-save shows them) and stop what loads them")
	}
	return out
}

// releaseNFT is what an apply of the iptables backend adds on a host that
// fwpush managed with nftables before: table inet fwpush deleted in the
// same guarded apply, and its file and unit removed once confirmed. It
// reports whether there is anything of it left.
func releaseNFT(f live.Facts, c *Change) bool {
	n := f.NFT
	if n == nil || n.Own == "" && n.Persisted == "" && !n.Boot {
		return false
	}
	if n.Own != "" {
		c.Apply.NFT = nft.Preamble
		own, _ := nft.Canonical(n.Own)
		_, removed := nft.Count(own, "")
		c.Removed += removed
		c.Diff += "# table " + nft.Table + ", which fwpush managed with nftables before, is deleted\n"
	}
	c.Persist.RemoveNFT = true
	return true
}

// digestNFT identifies the policy of a host of the nftables backend: the
// canonical form of its table.
func digestNFT(pol *roles.Policy) string {
	h := sha256.New()
	h.Write([]byte("nftables\x00"))
	h.Write([]byte(pol.NFT.Canonical()))
	return sum(h)
}

// stateNFT is State for a host of the nftables backend: its table, the
// files fwpush keeps for it, the iptables files and live filter tables it
// may give back, the other tables' base chains (as far as the warnings
// depend on them) and the legacy rules.
func stateNFT(f live.Facts, h interface{ Write([]byte) (int, error) }) {
	part := func(name, v string) { fmt.Fprintf(h, "%s %d\n%s\n", name, len(v), v) }
	n := f.NFT
	if n == nil {
		n = &live.NFT{}
	}
	own, err := nft.Canonical(n.Own)
	if err != nil {
		own = n.Own
	}
	part("nft table", own)
	part("nft list failed", fmt.Sprint(n.ListFailed))
	part("nft tool", fmt.Sprint(n.Tool))
	part("fwpush.nft", n.Persisted)
	part("nft boot", fmt.Sprint(n.Boot))
	part("old sets", strings.Join(n.OldSets, "\n"))
	part("ipsets", f.PersistedSets)
	var tables []string
	for _, t := range n.Tables {
		for _, ch := range t.Chains {
			tables = append(tables, strings.Join([]string{t.Family, t.Name, ch.Name, ch.Type, ch.Hook, ch.Priority, ch.Policy}, " "))
		}
	}
	part("nft base chains", strings.Join(tables, "\n"))
	part("rules.v4", f.Persisted4)
	part("rules.v6", f.Persisted6)
	part("applied", strings.TrimSpace(f.Applied))
	part("backend", f.Backend)
	part("other backend", f.OtherBackend)
	part("legacy", strings.Join(nftWarnings(f, &live.NFT{}), "\n"))
	if fwpushIPTables(f, n) {
		part("v4 rules", policy.Canonical(f.V4))
		part("v6 rules", policy.Canonical(f.V6))
	}
}
