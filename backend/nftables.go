package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// nftables loads a policy as table inet fwpush, with nft.
type nftables struct{}

func (nftables) Name() string { return inventory.NFTables }

// Files is the table's document, NAME.nft.
func (nftables) Files(pol *roles.Policy) []File {
	return []File{{"nft", pol.NFTDocument().Text}}
}

// Test loads each policy's table with nft, and reads back what nft lists
// of it: a table that nft lists otherwise than its canonical form would
// be found drifted on every run, and is refused too.
func (nftables) Test(ctx context.Context, t Tester, pols []*roles.Policy) (Tested, error) {
	var res Tested
	docs := make([]nft.Document, len(pols))
	texts := make([][]byte, len(pols))
	for i, p := range pols {
		docs[i] = p.NFTDocument()
		texts[i] = docs[i].Text
	}
	results, err := t.TestNFT(ctx, nft.Table, texts)
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Warning = "policies not loaded with nft, as a server would: " + err.Error()
		return res, nil
	}
	for i, r := range results {
		p := pols[i]
		var rej *xtables.Rejected
		switch {
		case errors.As(r.Err, &rej):
			res.Rejected = append(res.Rejected, rejection(p.Host.Name, docs[i], rej.Line, "nft refuses", rej.Msg))
			continue
		case r.Err != nil:
			return res, fmt.Errorf("host %s: nftables policy: %w", p.Host.Name, r.Err)
		}
		listed, err := nft.Canonical(r.Listing)
		if err != nil {
			res.Rejected = append(res.Rejected, roles.Rejection{Host: p.Host.Name, Who: "fwpush cannot read what nft lists of", Msg: err.Error()})
			continue
		}
		if want := p.NFT.Canonical(); listed != want {
			n, w, g := firstDiff(want, listed)
			// The canonical form is the document's table, from its
			// first line on.
			start := slices.Index(strings.Split(string(docs[i].Text), "\n"), "table "+nft.Table+" {")
			res.Rejected = append(res.Rejected, rejection(p.Host.Name, docs[i], start+n, "nft misreads",
				fmt.Sprintf("it lists %q as %q: a run would find this host drifted every time (a fault of fwpush's translation: please report it)", w, g)))
			continue
		}
		res.Loaded++
	}
	if res.Loaded > 0 {
		res.Said = "nft takes all " + english.Count(res.Loaded, "table")
	}
	return res, nil
}

// rejection is a refusal of line n of a host's document: at the line of
// the policy's documents it translates, when it translates one.
func rejection(host string, doc nft.Document, n int, who, msg string) roles.Rejection {
	if from := doc.Origins(n); len(from) > 0 {
		return roles.Rejection{Host: host, Family: from[0].Family, Line: from[0].Line, Who: who, Msg: msg}
	}
	return roles.Rejection{Host: host, Line: n, Who: who, Msg: msg}
}

// firstDiff finds the first line where two texts differ: its number, and
// the line of each (trimmed).
func firstDiff(a, b string) (int, string, string) {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return i + 1, strings.TrimSpace(x), strings.TrimSpace(y)
		}
	}
	return 0, "", ""
}
