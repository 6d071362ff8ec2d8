package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// render --sets shows a host's sets with its rules, and --out writes them
// as NAME.ipsets: the example's golden files with sets.
func TestRenderSets(t *testing.T) {
	code, out, errs := fwpush(t, "render", "--host", "mysql-1", "../../examples/site.toml")
	if code != exitOK {
		t.Fatalf("render --sets: code %d: %s", code, errs)
	}
	var want strings.Builder
	for _, ext := range []string{"rules.v4", "rules.v6", "ipsets"} {
		golden, err := os.ReadFile("../../roles/testdata/site-sets/mysql-1." + ext)
		if err != nil {
			t.Fatal(err)
		}
		want.WriteString("### mysql-1." + ext + "\n" + string(golden))
	}
	if diff := cmp.Diff(want.String(), out); diff != "" {
		t.Errorf("render --sets --host mysql-1 (-want +got):\n%s", diff)
	}

	dir := t.TempDir()
	if code, _, errs := fwpush(t, "render", "--out", dir, "../../examples/site.toml"); code != exitOK {
		t.Fatalf("render --sets --out: code %d: %s", code, errs)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*"))
	golden, _ := filepath.Glob("../../roles/testdata/site-sets/*")
	if len(written) != len(golden) || len(golden) != 18 {
		t.Errorf("render --sets --out wrote %d files, the golden files are %d (want 18)", len(written), len(golden))
	}
	for _, g := range golden {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Join(dir, filepath.Base(g)))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %v, or differs from the golden file", filepath.Base(g), err)
		}
	}
}

// render --host compiles that host only: a role whose template is
// missing fails render of the whole fleet, and not render of a host of
// another role.
func TestRenderHostCompilesOneHost(t *testing.T) {
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), "[roles.lb]\ntemplate   = \"public\"", "[roles.lb]\ntemplate   = \"missing.tmpl\"", 1)
	if broken == string(src) {
		t.Fatal("the example has no lb role to break")
	}
	site := filepath.Join(writeFiles(t, map[string]string{"site.toml": broken}), "site.toml")
	if code, _, errs := fwpush(t, "render", site); code != exitInvalid || !strings.Contains(errs, "roles.lb.template: open") {
		t.Errorf("render of the fleet: code %d, stderr %q; want the missing template", code, errs)
	}
	code, out, errs := fwpush(t, "render", "--host", "mysql-1", site)
	if code != exitOK || errs != "" || strings.Count(out, "### ") != 3 {
		t.Errorf("render --host mysql-1: code %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	l := &planLoader{host: "wordpress-1"}
	plan, err := l.load(context.Background(), site)
	if err != nil || len(plan.Policies) != 1 || plan.Policies[0].Host.Name != "wordpress-1" {
		t.Errorf("load of one host: %v", err)
	}
}

// validate --sets loads the example's sets with ipset and its policies
// with them, each once however many hosts share it.
func TestValidateSets(t *testing.T) {
	canTest(t)
	code, out, errs := fwpush(t, "validate", "../../examples/site.toml")
	want := "../../examples/site.toml: valid: 6 hosts, 4 roles; iptables-restore takes all 12 policies (IPv4 and IPv6), ipset all 4 sets\n"
	if code != exitOK || errs != "" || out != want {
		t.Errorf("validate --sets: code %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
}

// What ipset refuses names the set, its line and the hosts that use it;
// that ipset cannot run here is a warning, as for iptables.
func TestLoaderSets(t *testing.T) {
	var setDocs []string
	fake := &fakeTester{
		test: func(_ context.Context, docs []xtables.Doc) ([]error, error) {
			for _, d := range docs {
				if strings.Contains(string(d.Text), "match-set") != (len(d.Sets) > 0) {
					t.Errorf("a document and its sets do not go together:\n%s\nsets:\n%s", d.Text, d.Sets)
				}
				if d.Family == 6 && strings.Contains(string(d.Sets), "family inet ") {
					t.Errorf("IPv6 rules are given IPv4 sets:\n%s", d.Sets)
				}
			}
			return make([]error, len(docs)), nil
		},
		testSets: func(_ context.Context, docs [][]byte) ([]error, error) {
			res := make([]error, len(docs))
			for i, d := range docs {
				setDocs = append(setDocs, strings.SplitN(string(d), "\n", 2)[0])
				if strings.HasPrefix(string(d), "create fwp-app-4 ") {
					res[i] = &xtables.Rejected{Program: "ipset", Line: 2, Msg: "nope"}
				}
			}
			return res, nil
		},
	}
	l := &planLoader{tester: fake, opts: roles.Options{Sets: true}}
	_, err := l.load(context.Background(), "../../examples/site.toml")
	want := "../../examples/site.toml: ipset refuses set fwp-app-4 of hosts haproxy-www, mysql-1 and 3 more at line 2 (add fwp-app-4 198.18.0.21): nope"
	if err == nil || err.Error() != want {
		t.Errorf("load: %v, want %q", err, want)
	}
	wantDocs := []string{
		"create fwp-app-4 hash:ip family inet -exist",
		"create fwp-db-4 hash:ip family inet -exist",
		"create fwp-lb-4 hash:ip family inet -exist",
		"create fwp-sshd22 hash:ip family inet -exist",
	}
	if diff := cmp.Diff(wantDocs, slices.Sorted(slices.Values(setDocs))); diff != "" {
		t.Errorf("set documents, each once (-want +got):\n%s", diff)
	}

	fake.testSets = func(context.Context, [][]byte) ([]error, error) {
		return nil, errors.New("ipset is not installed here (the ipset package has it)")
	}
	var warn strings.Builder
	l = &planLoader{tester: fake, opts: roles.Options{Sets: true}, warn: &warn}
	if _, err := l.load(context.Background(), "../../examples/site.toml"); err != nil {
		t.Fatal(err)
	}
	if w := "../../examples/site.toml: warning: policies and sets not loaded with iptables-restore and ipset, as a server would: ipset is not installed here (the ipset package has it)\n"; warn.String() != w {
		t.Errorf("warning %q, want %q", warn.String(), w)
	}
}
