package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// iptables loads a policy into the filter table with iptables-restore
// and ip6tables-restore, its sets with ipset.
type iptables struct{}

func (iptables) Name() string { return inventory.IPTables }

// Files are rules.v4, rules.v6 and, when the policy has sets, ipsets.
func (iptables) Files(pol *roles.Policy) []File {
	out := []File{{"rules.v4", pol.V4}, {"rules.v6", pol.V6}}
	if s := pol.IPSets(); s != nil {
		out = append(out, File{"ipsets", s})
	}
	return out
}

// Test loads every set of the policies alone with ipset restore and,
// at the same time, each policy's documents with iptables-restore and
// ip6tables-restore, after the create lines of the sets they match.
func (iptables) Test(ctx context.Context, t Tester, pols []*roles.Policy) (Tested, error) {
	var res Tested
	sets := setsOf(pols) // each once, whatever the number of hosts that use it
	type ref struct {
		host   string
		family int
	}
	var docs []xtables.Doc
	var refs []ref
	for _, p := range pols {
		docs = append(docs,
			xtables.Doc{Family: 4, Text: p.V4, Sets: policy.DeclareSets(ofFamily(p.Sets, policy.Inet))},
			xtables.Doc{Family: 6, Text: p.V6, Sets: policy.DeclareSets(ofFamily(p.Sets, policy.Inet6))})
		refs = append(refs, ref{p.Host.Name, 4}, ref{p.Host.Name, 6})
	}
	// The sets and the policies load at once: the policies need only the
	// sets' create lines, and each load waits mostly on the kernel making
	// and unmaking its namespace.
	var setResults []error
	var setErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(sets) == 0 {
			return
		}
		docs := make([][]byte, len(sets))
		for i, s := range sets {
			docs[i] = policy.RestoreSets([]*policy.Set{s})
		}
		setResults, setErr = t.TestSets(ctx, docs)
	}()
	results, err := t.Test(ctx, docs)
	<-done
	if setErr != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Warning = "policies and sets not loaded with iptables-restore and ipset, as a server would: " + setErr.Error()
		return res, nil
	}
	for i, r := range setResults {
		var rej *xtables.Rejected
		switch {
		case r == nil:
			res.Sets++
		case errors.As(r, &rej):
			res.Rejected = append(res.Rejected, roles.Rejection{Set: sets[i], Line: rej.Line, Msg: rej.Msg})
		default:
			return res, fmt.Errorf("set %s: %w", sets[i].Name, r)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Warning = "policies not loaded with iptables-restore, as a server would: " + err.Error()
		return res, nil
	}
	for i, r := range results {
		var rej *xtables.Rejected
		switch {
		case r == nil:
			res.Loaded++
		case errors.As(r, &rej):
			res.Rejected = append(res.Rejected, roles.Rejection{Host: refs[i].host, Family: refs[i].family, Line: rej.Line, Msg: rej.Msg})
		default:
			return res, fmt.Errorf("host %s: IPv%d policy: %w", refs[i].host, refs[i].family, r)
		}
	}
	if res.Loaded > 0 {
		res.Said = fmt.Sprintf("iptables-restore takes all %d policies (IPv4 and IPv6)", res.Loaded)
		if res.Sets > 0 {
			res.Said += fmt.Sprintf(", ipset all %s", english.Count(res.Sets, "set"))
		}
	}
	return res, nil
}

// setsOf lists every set of policies once, in the order they name them.
func setsOf(pols []*roles.Policy) []*policy.Set {
	seen := map[*policy.Set]bool{}
	var out []*policy.Set
	for _, pol := range pols {
		for _, s := range pol.Sets {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// ofFamily are the sets of a family.
func ofFamily(sets []*policy.Set, family string) []*policy.Set {
	var out []*policy.Set
	for _, s := range sets {
		if s.Family == family {
			out = append(out, s)
		}
	}
	return out
}
