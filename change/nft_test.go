package change

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/roles"
)

// mixedPolicy is host's compiled policy in examples/mixed.toml, a fleet on
// both backends.
func mixedPolicy(t *testing.T, host string) (*inventory.Inventory, *roles.Policy) {
	t.Helper()
	inv, err := inventory.Load("../examples/mixed.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Policies {
		if p.Host.Name == host {
			return inv, p
		}
	}
	t.Fatalf("no host %s", host)
	return nil, nil
}

// nftHost is what a host of the nftables backend tells: nft there, its
// table own as nft lists it ("" for none), the interfaces the policy
// names.
func nftHost(pol *roles.Policy, own string) live.Facts {
	return live.Facts{
		Backend: "nf_tables",
		Links:   []string{"lo", pol.Host.PrivateIface, pol.Host.PublicIface},
		NFT:     &live.NFT{Tool: true, Own: own},
	}
}

// listed is the policy's table as nft lists it: the canonical form,
// indented by nft's own rules.
func listed(pol *roles.Policy) string { return pol.NFT.Canonical() }

func TestDecideNFT(t *testing.T) {
	inv, pol := mixedPolicy(t, "mysql-1")
	doc := string(pol.NFTDocument().Text)
	done := func(f *live.Facts) {
		f.NFT.Persisted, f.NFT.Boot, f.Applied = doc, true, Digest(pol)
	}
	drifted := strings.Replace(listed(pol), "\tchain input {\n", "\tchain input {\n\t\ttcp dport 4444 accept\n", 1)
	if drifted == listed(pol) {
		t.Fatal("no input chain to drift")
	}
	ipt := policyOf(t, loadFleet(t), "db-1") // what fwpush applied with iptables before
	for _, c := range []struct {
		name    string
		own     string
		facts   func(*live.Facts)
		action  Action
		refused string
		check   func(t *testing.T, c Change)
	}{
		{name: "first push: no table, nft missing", action: Apply, facts: func(f *live.Facts) { f.NFT.Tool = false },
			check: func(t *testing.T, c Change) {
				if c.Apply.NFT != doc || !c.Apply.InstallNFT || c.Apply.V4 != "" || c.Apply.V6 != "" {
					t.Errorf("apply %+v", c.Apply)
				}
				if c.Persist.NFT != doc || !c.Persist.Boot || !c.Persist.Record || c.Persist.RemoveIPT || c.Persist.V4 != "" {
					t.Errorf("persist %+v", c.Persist)
				}
				if !strings.Contains(c.Diff, "+table inet fwpush {") || c.Added == 0 || c.Removed != 0 {
					t.Errorf("diff (+%d -%d):\n%s", c.Added, c.Removed, c.Diff)
				}
			}},
		{name: "unchanged", own: listed(pol), facts: done, action: None},
		{name: "the table is the policy, the files are not there", own: listed(pol), action: PersistOnly,
			check: func(t *testing.T, c Change) {
				if c.Apply != nil || c.Persist.NFT != doc || !c.Persist.Boot {
					t.Errorf("apply %+v, persist %+v", c.Apply, c.Persist)
				}
			}},
		{name: "a rule added by hand", own: drifted, facts: done, action: RepairDrift,
			check: func(t *testing.T, c Change) {
				if c.Added != 0 || c.Removed != 1 || !strings.Contains(c.Diff, "-\t\ttcp dport 4444 accept") || c.Persist.NFT != "" {
					t.Errorf("(+%d -%d) persist %+v:\n%s", c.Added, c.Removed, c.Persist, c.Diff)
				}
			}},
		{name: "nft cannot list", facts: func(f *live.Facts) {
			f.NFT.ListFailed, f.NFT.ListError = true, "netlink: Error: cache initialization failed"
		},
			action: Refused, refused: "nft could not list the tables: netlink"},
		{name: "a listing fwpush cannot read", own: "table inet fwpush {\n\tchain input {\n", action: Refused, refused: "fwpush cannot read what nft lists"},
		{name: "an interface missing", facts: func(f *live.Facts) { f.Links = []string{"lo"} }, action: Refused, refused: "interface eth1"},
		{name: "other tables: a drop at fwpush's hooks is warned of, the rest is not", own: listed(pol), facts: func(f *live.Facts) {
			done(f)
			f.NFT.Tables = []live.Table{
				{Family: "ip", Name: "other", Chains: []live.BaseChain{{Name: "in", Type: "filter", Hook: "input", Priority: "0", Policy: "drop"}}},
				{Family: "ip", Name: "nat", Chains: []live.BaseChain{{Name: "pre", Type: "nat", Hook: "prerouting", Priority: "-100", Policy: "accept"}}},
				{Family: "inet", Name: "firewalld", Chains: []live.BaseChain{{Name: "filter_INPUT", Type: "filter", Hook: "input", Priority: "10", Policy: "accept"}}},
			}
			f.NFT.Tables = append(f.NFT.Tables, live.Table{Family: "ip6", Name: "docker", Chains: []live.BaseChain{{Name: "FORWARD", Type: "filter", Hook: "forward", Priority: "filter", Policy: "drop"}}})
		}, action: None, check: func(t *testing.T, c Change) {
			want := []string{"table ip other: base chain in drops at the input hook", "table ip6 docker: base chain FORWARD drops at the forward hook"}
			if len(c.Warnings) != len(want) {
				t.Fatalf("warnings %q", c.Warnings)
			}
			for i, w := range want {
				if !strings.HasPrefix(c.Warnings[i], w) {
					t.Errorf("warning %q, want %q...", c.Warnings[i], w)
				}
			}
		}},
		{name: "legacy iptables rules are warned of", own: listed(pol), facts: func(f *live.Facts) {
			done(f)
			f.OtherBackend, f.Other4 = "legacy", "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
		}, action: None, check: func(t *testing.T, c Change) {
			if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "iptables-legacy holds filter rules on the host (IPv4: 1 rule, policy INPUT DROP)") {
				t.Errorf("warnings %q", c.Warnings)
			}
		}},
		{name: "moving from iptables: the filter table given back, rules.v4 and rules.v6 removed", facts: func(f *live.Facts) {
			f.V4, f.V6 = string(ipt.V4), string(ipt.V6)
			f.Persisted4, f.Persisted6, f.Applied = string(ipt.V4), string(ipt.V6), Digest(ipt)
			// iptables-nft's filter table, fwpush's policy: what goes
			// is not warned of; another table's drop is.
			f.NFT.Tables = []live.Table{
				{Family: "ip", Name: "filter", Chains: []live.BaseChain{{Name: "INPUT", Type: "filter", Hook: "input", Priority: "filter", Policy: "drop"}}},
				{Family: "ip6", Name: "filter", Chains: []live.BaseChain{{Name: "INPUT", Type: "filter", Hook: "input", Priority: "filter", Policy: "drop"}}},
				{Family: "ip", Name: "other", Chains: []live.BaseChain{{Name: "in", Type: "filter", Hook: "input", Priority: "0", Policy: "drop"}}},
			}
		}, action: Apply, check: func(t *testing.T, c Change) {
			if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "table ip other:") {
				t.Errorf("warnings %q, want table ip other's alone", c.Warnings)
			}
			if !strings.Contains(c.Apply.V4, ":INPUT ACCEPT") || !strings.Contains(c.Apply.V4, "-F INPUT") || strings.Contains(c.Apply.V4, "-A ") || c.Apply.NFT != doc {
				t.Errorf("apply %+v", c.Apply)
			}
			if c.Removed == 0 {
				t.Error("the filter table's rules that go are not counted")
			}
			if !c.Persist.RemoveIPT || c.Persist.NFT != doc {
				t.Errorf("persist %+v", c.Persist)
			}
			if c.Persist.DropSets != "" || c.Persist.Sets != "" || c.Persist.RemoveSets {
				t.Errorf("persist %+v: the host had no sets to remove", c.Persist)
			}
		}},
		{name: "moving from iptables: fwpush's ipsets go, and its lines of ipsets, the only ones", facts: func(f *live.Facts) {
			f.V4, f.V6 = string(ipt.V4), string(ipt.V6)
			f.Persisted4, f.Persisted6, f.Applied = string(ipt.V4), string(ipt.V6), Digest(ipt)
			f.NFT.OldSets = []string{"fwp-app-4", "fwq-app-4"}
			f.PersistedSets = "create fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.21\n"
		}, action: Apply, check: func(t *testing.T, c Change) {
			if c.Persist.DropSets != "destroy fwp-app-4 -exist\ndestroy fwq-app-4 -exist\n" || !c.Persist.RemoveSets || c.Persist.Sets != "" || !c.Persist.RemoveIPT {
				t.Errorf("persist %+v", c.Persist)
			}
		}},
		{name: "the table applied, not persisted yet: ipsets holds fwpush's lines beside others'", own: listed(pol), facts: func(f *live.Facts) {
			f.PersistedSets = "create f2b-sshd hash:ip family inet\nadd f2b-sshd 198.51.100.9\ncreate fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.21\n"
		}, action: PersistOnly, check: func(t *testing.T, c Change) {
			if c.Persist.Sets != "create f2b-sshd hash:ip family inet\nadd f2b-sshd 198.51.100.9\n" || c.Persist.RemoveSets || c.Persist.DropSets != "" || c.Persist.NFT != doc || c.Persisted {
				t.Errorf("persist %+v, persisted %v", c.Persist, c.Persisted)
			}
		}},
		{name: "others' ipsets only: left alone", own: listed(pol), facts: func(f *live.Facts) {
			f.PersistedSets = "create f2b-sshd hash:ip family inet\n"
		}, action: PersistOnly, check: func(t *testing.T, c Change) {
			if c.Persist.Sets != "" || c.Persist.RemoveSets || c.Persist.DropSets != "" {
				t.Errorf("persist %+v", c.Persist)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := nftHost(pol, c.own)
			if c.facts != nil {
				c.facts(&f)
			}
			got := Decide(inv, pol, f, Options{})
			if got.Action != c.action {
				t.Fatalf("action %s (%v), want %s", got.Action, got.Refusal, c.action)
			}
			if c.refused != "" && (got.Refusal == nil || !strings.Contains(got.Refusal.Reason, c.refused)) {
				t.Errorf("refusal %v, want %q", got.Refusal, c.refused)
			}
			if c.refused == "" && got.Refusal != nil {
				t.Errorf("refused: %v", got.Refusal)
			}
			if got.Digest != Digest(pol) || got.Digest == Digest(&roles.Policy{Host: &inventory.Host{}, V4: pol.V4, V6: pol.V6}) {
				t.Errorf("digest %s: the nftables policy's must differ from its iptables documents'", got.Digest)
			}
			if c.check != nil {
				c.check(t, got)
			}
		})
	}
}

// A host moving back to iptables: its table deleted in the same apply,
// fwpush.nft and its unit removed; then nothing more.
func TestDecideBackToIPTables(t *testing.T) {
	inv := loadFleet(t)
	pol := policyOf(t, inv, "db-1")
	_, npol := mixedPolicy(t, "mysql-1")
	f := debian(t, pol.Host, "")
	persisted(pol)(&f)
	f.V4, f.V6 = string(pol.V4), string(pol.V6)
	f.NFT = &live.NFT{Tool: true, Own: listed(npol), Persisted: string(npol.NFTDocument().Text), Boot: true}
	c := Decide(inv, pol, f, Options{})
	if c.Action != Apply || c.Apply == nil || c.Apply.NFT != nft.Preamble || !c.Persist.RemoveNFT || c.Removed == 0 {
		t.Fatalf("%s: apply %+v, persist %+v, -%d", c.Action, c.Apply, c.Persist, c.Removed)
	}
	// The table gone, its file still there: persist only.
	f.NFT.Own = ""
	if c = Decide(inv, pol, f, Options{}); c.Action != PersistOnly || !c.Persist.RemoveNFT {
		t.Fatalf("%s: persist %+v", c.Action, c.Persist)
	}
	f.NFT = nil
	if c = Decide(inv, pol, f, Options{}); c.Action != None || c.Apply != nil {
		t.Fatalf("%s: apply %+v", c.Action, c.Apply)
	}
}

// A saved plan's state of an nftables host changes with its table and
// its files, not with other tables' rules or iptables-nft's.
func TestStateNFT(t *testing.T) {
	inv, pol := mixedPolicy(t, "mysql-1")
	base := nftHost(pol, listed(pol))
	s := State(inv, pol, base)
	for name, change := range map[string]func(*live.Facts){
		"table":      func(f *live.Facts) { f.NFT.Own = "" },
		"fwpush.nft": func(f *live.Facts) { f.NFT.Persisted = "x" },
		"a drop": func(f *live.Facts) {
			f.NFT.Tables = []live.Table{{Family: "ip", Name: "x", Chains: []live.BaseChain{{Name: "in", Hook: "input", Policy: "drop"}}}}
		},
	} {
		f := nftHost(pol, listed(pol))
		change(&f)
		if State(inv, pol, f) == s {
			t.Errorf("%s: the state did not change", name)
		}
	}
	f := nftHost(pol, listed(pol))
	f.V4 = "*filter\n:DOCKER - [0:0]\n-A DOCKER -j ACCEPT\nCOMMIT\n"
	if !slices.Equal([]string{State(inv, pol, f)}, []string{s}) {
		t.Error("iptables-nft's rules changed the state of an nftables host")
	}
}

// A host that fwpush managed with iptables, beside Docker and fail2ban,
// moves to nftables: the filter table is given back with the preserved
// chains, their rules and the jumps into them in place, and fwpush's own
// rules gone.
func TestDecideNFTReleaseKeepsPreserved(t *testing.T) {
	inv := loadFleet(t)
	app, _ := inv.Host("app-1")
	_, npol := mixedPolicy(t, "wordpress-1")
	h := *app
	h.Backend = inventory.NFTables
	pol := &roles.Policy{Host: &h, V4: npol.V4, V6: npol.V6, NFT: npol.NFT}
	f := nftHost(pol, "")
	f.V4, f.V6 = read(t, "live/app-1.docker.v4"), read(t, "live/app-1.docker.v6")
	f.Persisted4, f.Applied = "*filter\nCOMMIT\n", "sha256:0000"
	c := Decide(inv, pol, f, Options{})
	if c.Action != Apply || c.Refusal != nil {
		t.Fatalf("%s: %v", c.Action, c.Refusal)
	}
	for _, want := range []string{":INPUT ACCEPT", "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd", "-A FORWARD -j DOCKER-USER", "-A FORWARD -o docker0 -j DOCKER"} {
		if !strings.Contains(c.Apply.V4, want) {
			t.Errorf("the released filter table lacks %q:\n%s", want, c.Apply.V4)
		}
	}
	for _, gone := range []string{"--dport 9100", "-X DOCKER", "-F DOCKER", "LOG"} {
		if strings.Contains(c.Apply.V4, gone) {
			t.Errorf("the released filter table has %q:\n%s", gone, c.Apply.V4)
		}
	}
	if !c.Persist.RemoveIPT {
		t.Errorf("persist %+v: rules.v4 stays", c.Persist)
	}
}
