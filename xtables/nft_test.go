package xtables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestParseNFTOutput(t *testing.T) {
	for _, tt := range []struct {
		out  string
		line int
		msg  string
	}{
		{"/dev/stdin:7:3-9: Error: syntax error, unexpected junk\n\t\tfoo bar\n\t\t^^^\n", 7, "syntax error, unexpected junk"},
		{"/dev/stdin:5:3-30: Error: Could not process rule: No such file or directory\n\t\tjump nosuch\n\t\t^^^^^^^^^^^\n", 5, "Could not process rule: No such file or directory"},
		{"/dev/stdin:3:6-10: Error: conflicting intervals specified\n/dev/stdin:4:1-2: Error: syntax error\n", 3, "conflicting intervals specified; syntax error"},
		{"Error: No such file or directory\nlist table inet fwpush\n", 0, "No such file or directory"},
		{"", 0, ""},
	} {
		line, msg := parseNFTOutput(tt.out)
		if line != tt.line || msg != tt.msg {
			t.Errorf("parseNFTOutput(%q) = %d, %q; want %d, %q", tt.out, line, msg, tt.line, tt.msg)
		}
	}
}

// Each document is loaded alone, in a namespace of its own: one that nft
// refuses is refused at its line, the others are listed as loaded, and
// the machine's own rules stay as they were.
func TestNFT(t *testing.T) {
	if _, err := (&Tester{}).lookPath("nft", "nftables"); err != nil {
		t.Skipf("%v: scripts/deps.sh installs it", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("loading into a network namespace here needs root (or user namespaces, which TestUnprivileged covers for iptables)")
	}
	before := ownRules(t)
	good := "table inet fwpush {}\ndelete table inet fwpush\ntable inet fwpush {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tiifname \"lo\" accept\n\t}\n}\n"
	docs := [][]byte{
		[]byte("# host a\n" + good),
		[]byte("# host b\n" + good),
		[]byte(strings.Replace(good, `iifname "lo" accept`, `iifname "lo" acept`, 1)),
		[]byte(strings.Replace(good, `iifname "lo" accept`, `jump nosuch`, 1)),
		[]byte("table inet other {\n}\n"),
	}
	res, err := (&Tester{}).TestNFT(context.Background(), "inet fwpush", docs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		var rej *Rejected
		switch {
		case errors.As(r.Err, &rej):
			got = append(got, fmt.Sprintf("%s:%d", rej.Program, rej.Line))
		case r.Err != nil:
			got = append(got, r.Err.Error())
		default:
			got = append(got, fmt.Sprintf("listed %d", strings.Count(r.Listing, "iifname \"lo\" accept")))
		}
	}
	want := []string{"listed 1", "listed 1", "nft:6", "nft:6", "nft:0"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("results %v, want %v", got, want)
	}
	if after := ownRules(t); after != before {
		t.Errorf("the machine's own rules changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
