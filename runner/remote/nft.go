package remote

import (
	"regexp"
	"strings"

	"github.com/fwpush/fwpush/live"
)

// baseChain reads a base chain's line of nft list chains: "type filter
// hook input priority filter; policy drop;" (a netdev chain names its
// device too).
var baseChain = regexp.MustCompile(`^type (\S+) hook (\S+)(?: devices? .*?)? priority ([^;]+);(?: policy (\S+);)?`)

// parseNFT reads the sections of nft-facts.sh; nil when the host read
// none (a host of the iptables backend with nothing of nftables').
func parseNFT(sections map[string]string) *live.NFT {
	if _, ok := sections["nfttool"]; !ok {
		return nil
	}
	errMark := markPrefix + "error" + markSuffix
	n := &live.NFT{
		Tool:      strings.TrimSpace(sections["nfttool"]) != "",
		Persisted: sections["nftpersisted"],
		Boot:      strings.TrimSpace(sections["nftboot"]) == "yes",
	}
	failed := func(out string) bool {
		msg, bad := strings.CutSuffix(strings.TrimSpace(out), errMark)
		if bad {
			n.ListFailed = true
			if msg = strings.TrimSpace(msg); msg != "" && !strings.Contains(n.ListError, msg) {
				n.ListError = strings.TrimPrefix(n.ListError+"; "+msg, "; ")
			}
		}
		return bad
	}
	if n.Tool && !failed(sections["nftchains"]) {
		n.Tables = parseChains(sections["nftchains"])
	}
	if own := sections["nft"]; !failed(own) {
		n.Own = own
	}
	if sets := strings.Fields(sections["nftoldsets"]); len(sets) > 0 {
		n.OldSets = sets
	}
	return n
}

// parseChains reads nft list chains: every table but fwpush's, with its
// base chains.
func parseChains(out string) []live.Table {
	var tables []live.Table
	var t *live.Table
	chain := ""
	for line := range strings.SplitSeq(out, "\n") {
		l := strings.TrimSpace(line)
		switch f := strings.Fields(l); {
		case len(f) == 4 && f[0] == "table" && f[3] == "{":
			tables = append(tables, live.Table{Family: f[1], Name: f[2]})
			t, chain = &tables[len(tables)-1], ""
		case len(f) == 3 && f[0] == "chain" && f[2] == "{" && t != nil:
			chain = f[1]
		case chain != "" && t != nil:
			if m := baseChain.FindStringSubmatch(l); m != nil {
				t.Chains = append(t.Chains, live.BaseChain{Name: chain, Type: m[1], Hook: m[2],
					Priority: strings.TrimSpace(m[3]), Policy: cmpOr(m[4], "accept")})
			}
			chain = ""
		}
	}
	out2 := tables[:0]
	for _, t := range tables {
		if t.Family+" "+t.Name != "inet fwpush" {
			out2 = append(out2, t)
		}
	}
	return out2
}
