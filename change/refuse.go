package change

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// Owning the filter table: a host's policy holds only if nothing else
// writes the filter table behind fwpush's back, and fwpush only ever
// removes what it knows. These refusals are decided from the host's facts
// before anything on it changes.

// preflight refuses hosts where the policy cannot work: missing tools
// (ipset for a policy with sets), missing interfaces, or a policy that
// would not accept the very SSH session fwpush is using.
func preflight(h *inventory.Host, pol *roles.Policy, f live.Facts) error {
	for _, tool := range []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"} {
		if !slices.Contains(f.Tools, tool) {
			return fmt.Errorf("%s is not installed (install the iptables package)", tool)
		}
	}
	if f.SaveFailed {
		return fmt.Errorf("iptables-save failed: %s", f.SaveError)
	}
	if err := setsPreflight(pol, f); err != nil {
		return err
	}
	return reachable(h, pol, f)
}

// reachable refuses a host where the policy names an interface the host
// has not, or would not accept the very SSH session fwpush is using.
func reachable(h *inventory.Host, pol *roles.Policy, f live.Facts) error {
	ifaces := []string{h.PrivateIface}
	if h.HasPublic() {
		ifaces = append(ifaces, h.PublicIface)
	}
	for _, name := range ifaces {
		if !slices.Contains(f.Links, name) {
			return fmt.Errorf("interface %s named by the policy does not exist on the host (it has %s)", name, strings.Join(f.Links, ", "))
		}
	}
	if !f.Conn.Client.IsValid() || !f.Conn.Client.Is4() {
		return nil // unknown (or IPv6): the offline lockout check covered the intended path
	}
	rs, err := policy.Parse(string(pol.V4))
	if err != nil {
		return err
	}
	rs.WithSets(pol.Sets)
	in := f.Addrs[f.Conn.Server]
	pkt := policy.Packet{In: in, Src: f.Conn.Client, Dst: f.Conn.Server, Proto: "tcp", SPort: 40000, DPort: f.Conn.Port, State: "NEW"}
	if v := rs.Evaluate("INPUT", pkt); v != policy.Accept {
		return fmt.Errorf("the new policy would not accept this SSH session (from %s to %s:%d on %s): it would lock fwpush out", f.Conn.Client, f.Conn.Server, f.Conn.Port, in)
	}
	return nil
}

// coexist refuses a host where something else manages the firewall: the
// other iptables backend holding filter rules of its own (packets go
// through both, and fwpush manages one), or a firewall manager that would
// replace the policy at its next reload or boot (ufw, firewalld, the
// nftables service). --force-own overrides the managers, never the
// backends: fwpush cannot even read what the other backend would do. What
// it overrides is noted in c.
func coexist(f live.Facts, o Options, c *Change) *Refusal {
	if f.OtherBackend != "" {
		var held []string
		for _, o := range []struct{ family, doc string }{{"IPv4", f.Other4}, {"IPv6", f.Other6}} {
			if c := policy.Canonical(o.doc); !policy.Open(c) {
				held = append(held, o.family+": "+describeTable(c))
			}
		}
		if len(held) > 0 {
			backend := f.Backend
			return &Refusal{Stage: StageBackends, Reason: fmt.Sprintf("iptables here uses %s, but the %s backend holds filter rules too (%s): packets go through both, and fwpush manages the %s tables only; "+
				"empty the %s tables (%s shows them) and stop what loads them, then run again",
				backend, f.OtherBackend, strings.Join(held, "; "), backend, f.OtherBackend, otherSave(f.OtherBackend))}
		}
	}
	if len(f.Managers) == 0 {
		return nil
	}
	var found []string
	for _, m := range f.Managers {
		found = append(found, m.Name+" is "+m.How+": "+managerAdvice[m.Name])
	}
	if o.ForceOwn {
		c.Forced = append(c.Forced, "another firewall manager is here; --force-own applies the policy anyway: "+strings.Join(found, "; "))
		return nil
	}
	return &Refusal{Stage: StageOtherFirewall, Reason: strings.Join(found, "; ") + "; or run with --force-own to apply the policy anyway"}
}

// managerAdvice says, per manager, why it clashes and how to turn it off.
var managerAdvice = map[string]string{
	"ufw":       "it loads its own rules at boot and at every ufw reload, over the policy; disable it with `ufw disable`",
	"firewalld": "it replaces the rules whenever it starts or reloads; disable it with `systemctl disable --now firewalld`",
	"nftables":  "at boot it loads /etc/nftables.conf, whose `flush ruleset` removes the policy; disable it with `systemctl disable --now nftables`",
}

// otherSave names the tool that shows a backend's IPv4 filter table.
func otherSave(backend string) string {
	if backend == "legacy" {
		return "iptables-legacy-save"
	}
	return "iptables-nft-save"
}

// describeTable summarises a canonical filter table that is not open:
// its rules, user chains and closed policies.
func describeTable(doc string) string {
	rules, chains := 0, 0
	var policies []string
	for line := range strings.SplitSeq(doc, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "-A":
			rules++
		case strings.HasPrefix(f[0], ":") && len(f) >= 2 && f[1] == "-":
			chains++
		case strings.HasPrefix(f[0], ":") && len(f) >= 2 && f[1] != "ACCEPT":
			policies = append(policies, f[0][1:]+" "+f[1])
		}
	}
	var parts []string
	if rules > 0 {
		parts = append(parts, english.Count(rules, "rule"))
	}
	if chains > 0 {
		parts = append(parts, english.Count(chains, "user chain"))
	}
	if len(policies) > 0 {
		parts = append(parts, "policy "+strings.Join(policies, ", "))
	}
	return strings.Join(parts, ", ")
}

// unknownChains lists the unknown chains of the splits (IPv4, IPv6), each
// once, in order.
func unknownChains(splits ...policy.Split) []string {
	var out []string
	for _, s := range splits {
		for _, c := range s.Unknown {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// mayOwn decides whether the apply may remove the host's unknown chains:
// only with --force-own (noted in c), and never one that a preserved chain
// still jumps to. Its refusal names the chains and the preserve line that
// would keep them.
func mayOwn(inv *inventory.Inventory, h *inventory.Host, o Options, c *Change, splits ...policy.Split) *Refusal {
	unknown := unknownChains(splits...)
	if len(unknown) == 0 {
		return nil
	}
	var held []string
	for _, s := range splits {
		for _, c := range s.Held {
			if !slices.Contains(held, c) {
				held = append(held, c)
			}
		}
	}
	if len(held) > 0 {
		return refuseUnknown(fmt.Sprintf("%s: a preserved chain jumps there: removing %s would break that chain, even with --force-own; keep %s with %s",
			strings.Join(held, ", "), itThem(held), itThem(held), preserveLine(inv, h, held)))
	}
	if o.ForceOwn {
		c.Forced = append(c.Forced, "--force-own removes the unknown chains "+strings.Join(unknown, ", "))
		return nil
	}
	return refuseUnknown(fmt.Sprintf("%s: the policy does not declare %s and no preserve pattern keeps %s, and fwpush removes nothing it does not know; keep %s with %s, or remove %s with --force-own",
		strings.Join(unknown, ", "), itThem(unknown), itThem(unknown), itThem(unknown), preserveLine(inv, h, unknown), itThem(unknown)))
}

func refuseUnknown(reason string) *Refusal {
	return &Refusal{Stage: StageUnknownChains, Reason: reason}
}

// preserveLine is the preserve line of the host's role that would keep
// chains too: the role's patterns, then the ones that keep chains.
func preserveLine(inv *inventory.Inventory, h *inventory.Host, chains []string) string {
	pats := []string{}
	if r, ok := inv.Role(h.Role); ok {
		pats = append(pats, r.Preserve...)
	}
	for _, s := range policy.SuggestPatterns(chains) {
		if !slices.Contains(pats, s) {
			pats = append(pats, s)
		}
	}
	quoted := make([]string, len(pats))
	for i, s := range pats {
		quoted[i] = strconv.Quote(s)
	}
	where := "[roles." + h.Role + "]"
	if inv.Path != "" {
		where += " of " + inv.Path
	}
	return "preserve = [" + strings.Join(quoted, ", ") + "] in " + where
}

func itThem(chains []string) string {
	if len(chains) == 1 {
		return "it"
	}
	return "them"
}
