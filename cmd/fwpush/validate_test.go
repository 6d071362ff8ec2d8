package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/xtables"
)

// writeFiles writes files into a new directory and returns the directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A fleet of a tunnel and one database server, whose role's template is
// db.tmpl.
const dbFleet = `[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.d]
role = "db"
private_ip = "198.18.0.2"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.db]
template = "db.tmpl"
`

// dbTemplate is the built-in private policy plus one line.
func dbTemplate(line string) string {
	return `{{template "fwpush.header" .}}
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
{{template "fwpush.input" .}}
` + line + `
COMMIT
`
}

// canTest skips when this machine cannot load policies (make test, as
// root with scripts/deps.sh's iptables, always can).
func canTest(t *testing.T) {
	t.Helper()
	if _, err := (&xtables.Tester{}).Test(context.Background(), []xtables.Doc{{Family: 4, Text: []byte("*filter\nCOMMIT\n")}}); err != nil {
		t.Skipf("this machine cannot load policies: %v", err)
	}
}

// The case: a user template with a match no iptables has passes
// every offline check, and only iptables-restore refuses it.
func TestValidateRefusesWhatIptablesRefuses(t *testing.T) {
	canTest(t)
	dir := writeFiles(t, map[string]string{
		"site.toml": dbFleet,
		"db.tmpl":   dbTemplate("-A INPUT -m nosuchmatch -j ACCEPT"),
	})
	site := filepath.Join(dir, "site.toml")
	code, out, errs := fwpush(t, "validate", site)
	want := site + ":14: roles.db.template: " + filepath.Join(dir, "db.tmpl") + ":6: iptables-restore refuses the IPv4 policy of host d: " +
		"Couldn't load match `nosuchmatch':No such file or directory (d, line 13: -A INPUT -m nosuchmatch -j ACCEPT)\n" +
		site + ":14: roles.db.template: " + filepath.Join(dir, "db.tmpl") + ":6: ip6tables-restore refuses the IPv6 policy of host d: " +
		"Couldn't load match `nosuchmatch':No such file or directory (d, line 16: -A INPUT -m nosuchmatch -j ACCEPT)\n"
	if code != exitInvalid || out != "" {
		t.Errorf("validate: exit %d, stdout %q; want %d and nothing", code, out, exitInvalid)
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	// The same line made valid passes, and validate says it was loaded.
	dir = writeFiles(t, map[string]string{
		"site.toml": dbFleet,
		"db.tmpl":   dbTemplate("{{if eq .Family 4}}-A INPUT -s 198.51.100.0/24 -i eth1 -p udp -m udp --dport 161 -j ACCEPT{{end}}"),
	})
	code, out, errs = fwpush(t, "validate", filepath.Join(dir, "site.toml"))
	if code != exitOK || errs != "" || !strings.HasSuffix(out, ": valid: 2 hosts, 2 roles; iptables-restore takes all 4 policies (IPv4 and IPv6), ipset all 1 set\n") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// Warnings go to stderr in the inventory's form and leave the exit status
// alone; they do not come with errors.
func TestValidateWarnings(t *testing.T) {
	canTest(t)
	src := strings.Replace(dbFleet, `template = "db.tmpl"`, "template = \"private\"\nallow = [ { from = \"tunnel\", tcp = [5432] }, { from = \"tunnel\", tcp = [5432] } ]", 1)
	src = strings.Replace(src, "[hosts.d]\n", "[hosts.d]\npublic_ip6 = \"2001:db8::2\"\n", 1)
	site := filepath.Join(writeFiles(t, map[string]string{"site.toml": src}), "site.toml")
	code, out, errs := fwpush(t, "validate", site)
	want := site + `:8: hosts.d.public_ip6: warning: role "db" uses the private template, which opens nothing on the public interface: public_ip6 changes no rule` + "\n" +
		site + ":16: roles.db.allow[1]: warning: duplicates allow[0]: it allows nothing more\n"
	if code != exitOK || !strings.Contains(out, "valid: 2 hosts, 2 roles") {
		t.Errorf("validate: exit %d, stdout %q", code, out)
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	// With an error, only the error.
	bad := filepath.Join(writeFiles(t, map[string]string{"site.toml": strings.Replace(src, "[ssh]\n", "[ssh]\ntimeout = \"100000h\"\n", 1)}), "site.toml")
	code, _, errs = fwpush(t, "validate", bad)
	if code != exitInvalid || errs != bad+":2: ssh.timeout: 100000h is too long: at most 2m\n" {
		t.Errorf("validate: exit %d, stderr %q", code, errs)
	}
}

// fakeTester stands in for this machine's iptables and ipset.
type fakeTester struct {
	test     func(ctx context.Context, docs []xtables.Doc) ([]error, error)
	testSets func(ctx context.Context, docs [][]byte) ([]error, error) // nil: every set loads
	// testNFT stands in for nft; nil: this machine has none.
	testNFT func(ctx context.Context, table string, docs [][]byte) ([]xtables.Listed, error)
}

var _ policyTester = (*fakeTester)(nil)

func (f *fakeTester) Test(ctx context.Context, docs []xtables.Doc) ([]error, error) {
	return f.test(ctx, docs)
}

func (f *fakeTester) TestSets(ctx context.Context, docs [][]byte) ([]error, error) {
	if f.testSets == nil {
		return make([]error, len(docs)), nil
	}
	return f.testSets(ctx, docs)
}

func (f *fakeTester) TestNFT(ctx context.Context, table string, docs [][]byte) ([]xtables.Listed, error) {
	if f.testNFT == nil {
		return nil, errors.New("nft is not installed here (the nftables package has it)")
	}
	return f.testNFT(ctx, table, docs)
}

// The loader hands every host's two policies over, and says so in a
// warning when they could not be loaded here.
func TestLoaderCannotTest(t *testing.T) {
	var got []string
	fake := &fakeTester{test: func(_ context.Context, docs []xtables.Doc) ([]error, error) {
		for _, d := range docs {
			got = append(got, strings.SplitN(string(d.Text), "\n", 2)[0]+" / "+map[int]string{4: "v4", 6: "v6"}[d.Family])
		}
		return nil, errors.New("iptables-restore is not installed here (the iptables package has it)")
	}}
	var warn bytes.Buffer
	l := &planLoader{tester: fake, warn: &warn}
	plan, err := l.load(context.Background(), "../../examples/custom.toml")
	if err != nil || plan == nil || l.loaded != 0 {
		t.Fatalf("load: %v, %d loaded", err, l.loaded)
	}
	wantDocs := []string{
		"# fwpush policy for bastion (role tunnel), IPv4. Generated: edit the inventory, not this file. / v4",
		"# fwpush policy for bastion (role tunnel), IPv6. Generated: edit the inventory, not this file. / v6",
		"# fwpush policy for nas-1 (role storage), IPv4. Generated: edit the inventory, not this file. / v4",
		"# fwpush policy for nas-1 (role storage), IPv6. Generated: edit the inventory, not this file. / v6",
		"# fwpush policy for nas-2 (role storage), IPv4. Generated: edit the inventory, not this file. / v4",
		"# fwpush policy for nas-2 (role storage), IPv6. Generated: edit the inventory, not this file. / v6",
	}
	if diff := cmp.Diff(wantDocs, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
	want := "../../examples/custom.toml: warning: policies not loaded with iptables-restore, as a server would: iptables-restore is not installed here (the iptables package has it)\n"
	if warn.String() != want {
		t.Errorf("warning %q, want %q", warn.String(), want)
	}
}

// What iptables refuses names the host and family of the document.
func TestLoaderRejected(t *testing.T) {
	fake := &fakeTester{test: func(_ context.Context, docs []xtables.Doc) ([]error, error) {
		res := make([]error, len(docs))
		res[3] = &xtables.Rejected{Program: "ip6tables-restore", Line: 2, Msg: "nope"} // nas-1, IPv6
		return res, nil
	}}
	l := &planLoader{tester: fake}
	_, err := l.load(context.Background(), "../../examples/custom.toml")
	want := "../../examples/custom.toml:26: roles.storage.template: ip6tables-restore refuses the IPv6 policy of host nas-1 at line 2 (*filter): nope"
	if err == nil || err.Error() != want || l.loaded != 5 {
		t.Errorf("load: %v (%d loaded), want %q", err, l.loaded, want)
	}
	if code := exitCode(err, &bytes.Buffer{}); code != exitInvalid {
		t.Errorf("exit %d, want %d", code, exitInvalid)
	}
}

// A role's template that names a file not written as one (/etc/shadow,
// say), or a .tmpl link to one, is refused without a byte of it read: its
// first line used to be quoted in the error.
func TestValidateReadsOnlyTemplates(t *testing.T) {
	dir := writeFiles(t, map[string]string{"secret": "root:SECRET-HASH:20228:0:99999:7:::\n"})
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(dir, "db.tmpl")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ template, want string }{
		{filepath.Join(dir, "secret"), `roles.db.template: "` + filepath.Join(dir, "secret") + `" is neither a built-in template (private, public, tunnel) nor a template file, whose name ends in .tmpl`},
		{"db.tmpl", "roles.db.template: " + filepath.Join(dir, "db.tmpl") + " leads to " + filepath.Join(dir, "secret") + ", whose name does not end in .tmpl: refused"},
	} {
		site := filepath.Join(dir, "site.toml")
		if err := os.WriteFile(site, []byte(strings.Replace(dbFleet, `"db.tmpl"`, `"`+tc.template+`"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, command := range []string{"validate", "render"} {
			code, out, errs := fwpush(t, command, site)
			if code != exitInvalid || !strings.Contains(errs, tc.want) || strings.Contains(out+errs, "SECRET") {
				t.Errorf("%s with template %s: exit %d, stdout %q, stderr:\n%s\nwant exit 3, %q, and nothing of the file", command, tc.template, code, out, errs, tc.want)
			}
		}
	}
}
