package backend

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// fakeTester stands in for this machine's iptables, ipset and nft.
type fakeTester struct {
	test    func(docs []xtables.Doc) ([]error, error)
	sets    func(docs [][]byte) ([]error, error)
	testNFT func(table string, docs [][]byte) ([]xtables.Listed, error)
}

var _ Tester = (*fakeTester)(nil)

func (f *fakeTester) Test(_ context.Context, docs []xtables.Doc) ([]error, error) {
	return f.test(docs)
}

func (f *fakeTester) TestSets(_ context.Context, docs [][]byte) ([]error, error) {
	return f.sets(docs)
}

func (f *fakeTester) TestNFT(_ context.Context, table string, docs [][]byte) ([]xtables.Listed, error) {
	return f.testNFT(table, docs)
}

func mixed(t *testing.T) *roles.Plan {
	t.Helper()
	inv, err := inventory.Load("../examples/mixed.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// Each host has its inventory's backend, and its documents are that
// backend's.
func TestGroupAndFiles(t *testing.T) {
	plan := mixed(t)
	bs, groups := Group(plan.Policies)
	got := map[string][]string{}
	for i, b := range bs {
		for _, p := range groups[i] {
			var exts []string
			for _, f := range b.Files(p) {
				exts = append(exts, f.Ext)
			}
			got[b.Name()] = append(got[b.Name()], p.Host.Name+" "+strings.Join(exts, ","))
		}
	}
	want := map[string][]string{
		"iptables": {"tunnel-1 rules.v4,rules.v6,ipsets", "wordpress-2 rules.v4,rules.v6,ipsets"},
		"nftables": {"haproxy-www nft", "mysql-1 nft", "mysql-2 nft", "wordpress-1 nft"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backends and files (-want +got):\n%s", diff)
	}
}

// nftables' Test hands nft the table of each policy, and reports what nft
// refuses at the line of the policy the refused rule translates, and a
// table that nft lists otherwise than its canonical form.
func TestNFTablesTest(t *testing.T) {
	plan := mixed(t)
	_, groups := Group(plan.Policies)
	pols := groups[1]
	var tables []string
	fake := &fakeTester{testNFT: func(table string, docs [][]byte) ([]xtables.Listed, error) {
		tables = append(tables, table)
		out := make([]xtables.Listed, len(docs))
		for i, p := range pols {
			out[i].Listing = p.NFT.Canonical()
		}
		doc := pols[1].NFTDocument() // mysql-1
		lines := strings.Split(string(doc.Text), "\n")
		for n, l := range lines {
			if strings.Contains(l, "tcp dport 3306") {
				out[1] = xtables.Listed{Err: &xtables.Rejected{Program: "nft", Line: n + 1, Msg: "nope"}}
				break
			}
		}
		// mysql-2's table comes back with a rule listed otherwise.
		out[2].Listing = strings.Replace(out[2].Listing, "ct state established,related accept", "ct state related,established accept", 1)
		return out, nil
	}}
	res, err := NFTables.Test(context.Background(), fake, pols)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0] != "inet fwpush" {
		t.Errorf("tables %v", tables)
	}
	if res.Loaded != 2 || res.Said != "nft takes all 2 tables" || res.Warning != "" {
		t.Errorf("result %+v", res)
	}
	var got []string
	for _, r := range res.Rejected {
		got = append(got, r.Host+" "+r.Who+" "+string(rune('0'+r.Family)))
	}
	if diff := cmp.Diff([]string{"mysql-1 nft refuses 4", "mysql-2 nft misreads 4"}, got); diff != "" {
		t.Errorf("rejections (-want +got):\n%s", diff)
	}
	err = plan.Rejected(res.Rejected)
	for _, want := range []string{
		"nft refuses the IPv4 policy of host mysql-1 at line 13 (-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT): nope",
		`nft misreads the IPv4 policy of host mysql-2 at line 8 (-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT): it lists "ct state established,related accept" as "ct state related,established accept"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems %v lack %q", err, want)
		}
	}

	// A machine without nft says so, in a warning.
	fake.testNFT = func(string, [][]byte) ([]xtables.Listed, error) {
		return nil, errors.New("nft is not installed here (the nftables package has it)")
	}
	res, err = NFTables.Test(context.Background(), fake, pols)
	if err != nil || res.Warning != "policies not loaded with nft, as a server would: nft is not installed here (the nftables package has it)" || res.Loaded != 0 {
		t.Errorf("without nft: %+v, %v", res, err)
	}
}
