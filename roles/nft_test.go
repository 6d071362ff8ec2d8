package roles

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/nft"
)

// nftFleet is the test fleet with its database on the nftables backend.
var nftFleet = strings.Replace(fleet, "[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"private\"\nbackend = \"nftables\"", 1)

// A host of the nftables backend gets its table, matching the hosts of a
// role through named sets; the others are compiled as before, with no
// table, and, without Options.Sets, one rule per address.
func TestNFTHosts(t *testing.T) {
	inv := parse(t, nftFleet)
	plan, err := CompileHosts(inv, nil, inv.Hosts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Policies {
		if p.Host.Name != "d" {
			if p.NFT != nil || len(p.Sets) > 0 || len(p.NFTDocument().Text) > 0 {
				t.Errorf("%s, an iptables host, has a table or sets: %v %v", p.Host.Name, p.NFT, p.Sets)
			}
			continue
		}
		if p.NFT == nil {
			t.Fatal("d, an nftables host, has no table")
		}
		var names []string
		for _, s := range p.NFT.Sets {
			names = append(names, s.Name+" "+strings.Join(s.Elements, ","))
		}
		if diff := cmp.Diff([]string{"fwp-app-4 198.18.0.3,198.18.0.4"}, names); diff != "" {
			t.Errorf("d's sets (-want +got):\n%s", diff)
		}
		input := p.NFT.Chains[0]
		for _, want := range []string{
			`ip saddr 198.18.0.1 iifname "eth1" tcp dport 22 accept`,
			`iifname "eth1" ip saddr @fwp-app-4 tcp dport 5432 accept`,
			`ip saddr 198.51.100.0/24 iifname "eth1" meta l4proto tcp accept`,
		} {
			if !slices.ContainsFunc(input.Rules, func(r nft.Rule) bool { return r.Show == want }) {
				t.Errorf("d's input chain has no %q:\n%s", want, p.NFT.Canonical())
			}
		}
		doc := string(p.NFTDocument().Text)
		if !strings.HasPrefix(doc, "# fwpush policy for d (role db): table inet fwpush, IPv4 and IPv6.") || !strings.Contains(doc, nft.Preamble) {
			t.Errorf("d's document:\n%s", doc)
		}
		if errs := Lockout(plan.Inventory, p.Host, p); len(errs) > 0 {
			t.Errorf("d: %v", errs)
		}
	}
}

// A rule the nftables backend cannot translate is refused at the line of
// the template that wrote it, for every host of the role, like a rule
// iptables-restore refuses; on an iptables host the same template is
// fine.
func TestNFTRefused(t *testing.T) {
	tmpl := "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"{{template \"fwpush.input\" .}}\n-A INPUT -p tcp -m recent --rcheck -j DROP\nCOMMIT\n"
	read := func(path string) ([]byte, error) {
		if filepath.Base(path) == "recent.tmpl" {
			return []byte(tmpl), nil
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
	}
	src := strings.Replace(nftFleet, "[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"tpl/recent.tmpl\"", 1)
	_, err := Compile(parse(t, src), read)
	var ierr *inventory.Error
	if !errors.As(err, &ierr) {
		t.Fatalf("got %v, want an *inventory.Error", err)
	}
	want := []string{
		"test.toml:32: roles.db.template: tpl/recent.tmpl:6: the nftables backend refuses the IPv4 policy of host d: match -m recent is not one it translates (it translates " + nftTranslated + ") (d, line 15: -A INPUT -p tcp -m recent --rcheck -j DROP)",
		"test.toml:32: roles.db.template: tpl/recent.tmpl:6: the nftables backend refuses the IPv6 policy of host d: match -m recent is not one it translates (it translates " + nftTranslated + ") (d, line 16: -A INPUT -p tcp -m recent --rcheck -j DROP)",
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := Compile(parse(t, strings.Replace(src, "backend = \"nftables\"", "", 1)), read); err != nil {
		t.Errorf("on the iptables backend: %v", err)
	}
}

const nftTranslated = "-s, -d, -i, -o, -p tcp|udp|sctp|icmp|ipv6-icmp, -m tcp|udp|sctp|multiport|icmp|icmp6|conntrack|state|set|limit|comment, -j ACCEPT|DROP|REJECT|RETURN|LOG|CHAIN, -g CHAIN"

// What nft refuses is reported at the template line of the rule it names,
// through the rule's origin, or at the line of the document it names.
func TestNFTRejected(t *testing.T) {
	plan, err := Compile(parse(t, nftFleet), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = plan.Rejected([]Rejection{
		{Host: "d", Family: 4, Line: 6, Msg: "Could not process rule", Who: "nft refuses"},
		{Host: "d", Line: 4, Msg: "syntax error", Who: "nft refuses"},
	})
	want := []string{
		"test.toml:32: roles.db.template: nft refuses the IPv4 policy of host d at line 6 (-A INPUT -i lo -j ACCEPT): Could not process rule",
		"test.toml:32: roles.db.template: nft refuses the nftables policy of host d at line 4 (table inet fwpush {): syntax error",
	}
	if err == nil {
		t.Fatal("no problems")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
