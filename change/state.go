package change

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// State identifies the firewall state that the facts f of the host of pol
// tell, as far as a change decided from them depends on it: a saved plan
// records it, and apply refuses a host whose state is no longer the one the
// plan was made on (a hand change in between), rather than overwrite what
// nobody reviewed.
//
// It covers, for IPv4 and IPv6, the live rules that fwpush owns (the
// canonical filter table without the chains a preserve pattern keeps), the
// jumps into preserved chains and where they stand, the unknown chains and
// those a preserved chain jumps to; whether iptables-save failed; the
// persisted rules.v4 and rules.v6 as they are, the digest recorded as
// applied, whether iptables-persistent is installed; the backend and the
// other backend's filter tables; the other firewall managers found;
// fwpush's sets (their canonical form), whether ipset failed,
// /etc/iptables/ipsets as it is and whether ipset-persistent is installed.
//
// It leaves out what changes without anyone touching the firewall: packet
// counters and comments (the canonical form drops them), what preserved
// chains hold (a ban fail2ban adds, a container Docker starts), other
// software's sets, the temporary sets of an apply, the runs at work and
// their guards, the lock, where the SSH session comes from and goes to,
// the host's interfaces, addresses and tools (ipset too). What of those a
// change depends on (the session, the interfaces, the tools) apply checks
// again on the facts it reads itself.
func State(inv *inventory.Inventory, pol *roles.Policy, f live.Facts) string {
	h := sha256.New()
	part := func(name, v string) { fmt.Fprintf(h, "%s %d\n%s\n", name, len(v), v) }
	part("state", "fwpush/state/v1")
	if pol.Host.Backend == inventory.NFTables {
		part("backend", inventory.NFTables)
		stateNFT(f, h)
		return sum(h)
	}
	preserve := inv.Preserve(pol.Host.Role)
	for _, fam := range []struct {
		name       string
		live, want []byte
	}{{"v4", []byte(f.V4), pol.V4}, {"v6", []byte(f.V6), pol.V6}} {
		live := policy.Canonical(string(fam.live))
		s := policy.SplitLive(live, policy.Canonical(string(fam.want)), preserve)
		part(fam.name+" rules", withoutPreserved(live, s.Preserved))
		part(fam.name+" held", strings.Join(s.Held, "\n"))
	}
	part("save failed", fmt.Sprint(f.SaveFailed))
	part("rules.v4", f.Persisted4)
	part("rules.v6", f.Persisted6)
	part("applied", strings.TrimSpace(f.Applied))
	part("persistent", fmt.Sprint(f.Persistent))
	part("backend", f.Backend)
	part("other backend", f.OtherBackend)
	part("other v4", policy.Canonical(f.Other4))
	part("other v6", policy.Canonical(f.Other6))
	managers := make([]string, len(f.Managers))
	for i, m := range f.Managers {
		managers[i] = m.Name + ": " + m.How
	}
	slices.Sort(managers)
	part("managers", strings.Join(managers, "\n"))
	// fwpush's sets as the canonical form tells them (not the kernel's
	// order of members, nor the sizes of the hashes), and the file that
	// loads them at boot; nothing on a host that has none of them, whose
	// state is the one it had before fwpush had sets.
	sets := f.Sets
	if own, _, err := liveSets(f); err == nil {
		sets = policy.CanonicalSets(own)
	}
	if f.SetsFailed || sets != "" || f.PersistedSets != "" || f.PersistentSets {
		part("sets failed", fmt.Sprint(f.SetsFailed))
		part("sets", sets)
		part("ipsets", f.PersistedSets)
		part("persistent sets", fmt.Sprint(f.PersistentSets))
	}
	return sum(h)
}

// withoutPreserved is a canonical table without the chains kept and their
// rules: what fwpush owns, with the jumps into kept chains where they
// stand (an apply puts them back there).
func withoutPreserved(table string, kept []string) string {
	if len(kept) == 0 {
		return table
	}
	var b strings.Builder
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":") && slices.Contains(kept, f[0][1:]):
			continue
		case len(f) > 1 && f[0] == "-A" && slices.Contains(kept, f[1]):
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
