package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/nft"
	"github.com/fwpush/fwpush/xtables"
)

// canTestNFT skips when this machine cannot load nftables documents
// (make test, as root with scripts/deps.sh's nftables, always can).
func canTestNFT(t *testing.T) {
	t.Helper()
	if _, err := (&xtables.Tester{}).TestNFT(context.Background(), nft.Table, nil); err != nil {
		t.Skipf("this machine cannot load nftables documents: %v", err)
	}
}

// render shows a host of the nftables backend as its table, and writes
// it as NAME.nft; the others as before.
func TestRenderNFT(t *testing.T) {
	code, out, errs := fwpush(t, "render", "--host", "mysql-1", "../../examples/mixed.toml")
	if code != exitOK || errs != "" {
		t.Fatalf("render: exit %d, stderr %q", code, errs)
	}
	if !strings.HasPrefix(out, "### mysql-1.nft\n# fwpush policy for mysql-1 (role db): table inet fwpush") ||
		!strings.Contains(out, "\n"+nft.Preamble+"table inet fwpush {\n") || strings.Contains(out, "rules.v4") {
		t.Errorf("render --host mysql-1:\n%s", out)
	}
	dir := t.TempDir()
	if code, _, errs := fwpush(t, "render", "--out", dir, "../../examples/mixed.toml"); code != exitOK {
		t.Fatalf("render --out: exit %d, %s", code, errs)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"haproxy-www.nft", "mysql-1.nft", "mysql-2.nft", "tunnel-1.ipsets", "tunnel-1.rules.v4", "tunnel-1.rules.v6",
		"wordpress-1.nft", "wordpress-2.ipsets", "wordpress-2.rules.v4", "wordpress-2.rules.v6"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

// validate loads the tables of the nftables hosts with nft, and the
// policies of the others with iptables-restore; a rule the translator
// does not take, or one that nft refuses, is refused at the line of the
// template that wrote it.
func TestValidateNFT(t *testing.T) {
	canTest(t)
	canTestNFT(t)
	code, out, errs := fwpush(t, "validate", "../../examples/mixed.toml")
	if code != exitOK || errs != "" || !strings.HasSuffix(out, ": valid: 6 hosts, 4 roles; iptables-restore takes all 4 policies (IPv4 and IPv6), ipset all 4 sets; nft takes all 4 tables\n") {
		t.Errorf("validate mixed.toml: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	fleet := strings.Replace(dbFleet, `template = "db.tmpl"`, "template = \"db.tmpl\"\nbackend = \"nftables\"", 1)
	for _, tc := range []struct {
		line, want string
	}{
		{"-A INPUT -p tcp -m recent --rcheck -j DROP",
			"the nftables backend refuses the IPv4 policy of host d: match -m recent is not one it translates"},
		// iptables takes a chain named so; nft does not.
		{"{{if eq .Family 4}}-A INPUT -p tcp -j counter\n:counter - [0:0]{{end}}",
			"nft refuses the IPv4 policy of host d: syntax error"},
	} {
		dir := writeFiles(t, map[string]string{"site.toml": fleet, "db.tmpl": dbTemplate(tc.line)})
		site := filepath.Join(dir, "site.toml")
		code, out, errs := fwpush(t, "validate", site)
		want := site + ":14: roles.db.template: " + filepath.Join(dir, "db.tmpl") + ":6: " + tc.want
		if code != exitInvalid || out != "" || !strings.HasPrefix(errs, want) {
			t.Errorf("validate %q: exit %d, stdout %q, stderr %q; want %d and %q...", tc.line, code, out, errs, exitInvalid, want)
		}
	}
}
