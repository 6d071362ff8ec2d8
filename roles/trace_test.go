package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
)

// lineOrigin finds the line of a host's traced document that is want, and
// returns its origin.
func lineOrigin(t *testing.T, tr *Trace, family int, want string) Origin {
	t.Helper()
	doc := tr.Policy.V4
	if family == 6 {
		doc = tr.Policy.V6
	}
	for i, l := range strings.Split(string(doc), "\n") {
		if l == want {
			return tr.Origin(family, i+1)
		}
	}
	t.Fatalf("%s has no IPv%d line %q:\n%s", tr.Policy.Host.Name, family, want, doc)
	return Origin{}
}

// TestTrace: every line of the example's policies comes from the entry
// of the inventory that makes it (an allow entry and the host it names,
// public_tcp, the tunnel) or from the template, at its line, with and
// without sets.
func TestTrace(t *testing.T) {
	inv, err := inventory.Load("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The line of the example that holds text.
	lineOf := func(text string) int {
		for i, l := range strings.Split(string(src), "\n") {
			if strings.Contains(l, text) {
				return i + 1
			}
		}
		t.Fatalf("examples/site.toml has no line with %q", text)
		return 0
	}
	dbAllow0 := lineOf(`allow = [ { from = "app", tcp = [3306] }`)
	appFromLB := lineOf(`{ from = "lb",  tcp = [80] }`)
	appFromCIDR := lineOf(`{ from = "198.51.100.0/24", tcp = [9100] }`)
	lbPublic := lineOf(`public_tcp = [80, 443]`)
	tunnel := lineOf(`tunnel      = "tunnel-1"`)
	dbTemplate := lineOf(`template = "private"`) // app's, the first; db's is below
	dbTemplate = strings.Count(string(src[:strings.LastIndex(string(src), `template = "private"`)]), "\n") + 1

	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			plan, err := CompileHosts(inv, os.ReadFile, inv.Hosts, mode.opts)
			if err != nil {
				t.Fatal(err)
			}
			trace := func(host string) *Trace {
				t.Helper()
				tr, err := plan.Trace(host)
				if err != nil {
					t.Fatal(err)
				}
				if !tr.Exact {
					t.Errorf("%s: the trace of a built-in template is not exact", host)
				}
				return tr
			}
			db, lb, app := trace("mysql-1"), trace("haproxy-www"), trace("wordpress-1")
			type want struct {
				tr     *Trace
				family int
				line   string
				origin Origin
			}
			cases := []want{
				{db, 4, ":INPUT DROP [0:0]", Origin{Key: "roles.db.template", Line: dbTemplate, Template: "private.tmpl", TemplateLine: 5}},
				{db, 4, "-A INPUT -i lo -j ACCEPT", Origin{Key: "roles.db.template", Line: dbTemplate, Template: "base.tmpl", TemplateLine: 16}},
				{db, 4, "-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT", Origin{Key: "ssh.tunnel", Line: tunnel, Peer: "tunnel-1"}},
				{lb, 4, "-A INPUT -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT", Origin{Key: "roles.lb.public_tcp", Line: lbPublic}},
				{lb, 6, "-A INPUT -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT", Origin{Key: "roles.lb.public_tcp", Line: lbPublic}},
			}
			if mode.opts.Sets {
				cases = append(cases,
					want{db, 4, "-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT", Origin{Key: "roles.db.allow[0]", Line: dbAllow0, Peer: "app"}},
					want{lb, 4, "-A OUTPUT -o eth1 -p tcp -m set --match-set fwp-app-4 dst -m tcp --dport 80 -j ACCEPT", Origin{Key: "roles.app.allow[0]", Line: appFromLB, Peer: "app"}},
				)
			} else {
				cases = append(cases,
					want{db, 4, "-A INPUT -s 198.18.0.22/32 -i eth1 -p tcp -m tcp --dport 3306 -j ACCEPT", Origin{Key: "roles.db.allow[0]", Line: dbAllow0, Peer: "wordpress-2"}},
					want{lb, 4, "-A OUTPUT -d 198.18.0.21/32 -o eth1 -p tcp -m tcp --dport 80 -j ACCEPT", Origin{Key: "roles.app.allow[0]", Line: appFromLB, Peer: "wordpress-1"}},
				)
			}
			cases = append(cases, want{app, 4, "-A INPUT -s 198.51.100.0/24 -i eth1 -p tcp -m tcp --dport 9100 -j ACCEPT", Origin{Key: "roles.app.allow[3]", Line: appFromCIDR, Peer: "198.51.100.0/24"}})
			for _, c := range cases {
				got := lineOrigin(t, c.tr, c.family, c.line)
				if got.Flow() {
					// A flow's rule is written by a line that serves
					// several: which one is not asserted.
					got.Template, got.TemplateLine = "", 0
				}
				if diff := cmp.Diff(c.origin, got); diff != "" {
					t.Errorf("%s IPv%d %q (-want +got):\n%s", c.tr.Policy.Host.Name, c.family, c.line, diff)
				}
			}
			// Every line has an origin, and every rule of a flow one
			// of the flow's.
			for _, tr := range []*Trace{db, lb, app} {
				for _, fam := range []int{4, 6} {
					doc := tr.Policy.V4
					if fam == 6 {
						doc = tr.Policy.V6
					}
					for i, l := range strings.Split(strings.TrimSuffix(string(doc), "\n"), "\n") {
						o := tr.Origin(fam, i+1)
						if o.Key == "" || o.Line == 0 {
							t.Errorf("%s IPv%d line %d %q: origin %+v", tr.Policy.Host.Name, fam, i+1, l, o)
						}
						if tr == db && strings.Contains(l, "--dport 3306") && o.Key != "roles.db.allow[0]" && o.Key != "roles.db.allow[1]" {
							t.Errorf("%s line %q comes from %s", tr.Policy.Host.Name, l, o.Key)
						}
					}
				}
			}
		})
	}
}

// TestTraceUserTemplate: a user template's lines are traced to its own
// lines, the rules of its data to their allow entries; one that does more
// with the data than write it is traced to the template alone, and says
// so.
func TestTraceUserTemplate(t *testing.T) {
	plan := compile(t, "../examples/custom.toml")
	tr, err := plan.Trace("nas-1")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Exact {
		t.Error("the trace of examples/templates/snmp.tmpl is not exact")
	}
	snmp := lineOrigin(t, tr, 4, "-A INPUT -s 198.51.100.0/24 -i eth1 -p udp -m udp --dport 161 -j ACCEPT")
	if snmp.Key != "roles.storage.template" || snmp.Template != filepath.Join("..", "examples", "templates", "snmp.tmpl") || snmp.TemplateLine != 17 {
		t.Errorf("the template's own rule: %+v", snmp)
	}
	nfs := lineOrigin(t, tr, 4, "-A INPUT -s 198.18.1.52/32 -i eth1 -p tcp -m tcp --dport 2049 -j ACCEPT")
	if nfs.Key != "roles.storage.allow[0]" || nfs.Peer != "nas-2" {
		t.Errorf("the rule of an allow entry: %+v", nfs)
	}

	// A template that compares a rule's peer: what the tags make of it is
	// not what it renders.
	dir := t.TempDir()
	tmpl := `{{template "fwpush.header" .}}
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
{{template "fwpush.input" .}}
{{- range .Ingress}}
{{- if eq .PeerName "nas-2"}}
-A INPUT -i {{$.Interfaces.Private}} -p {{.Proto}} -j ACCEPT
{{- end}}
{{- end}}
COMMIT
`
	body := strings.Replace(readFile(t, "../examples/custom.toml"), `template = "templates/snmp.tmpl"`, `template = "cmp.tmpl"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "cmp.tmpl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "custom.toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	plan = compile(t, filepath.Join(dir, "custom.toml"))
	tr, err = plan.Trace("nas-1")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Exact {
		t.Error("a template that compares a rule's peer name is traced as exact")
	}
	if o := lineOrigin(t, tr, 4, "-A INPUT -i eth1 -p tcp -j ACCEPT"); o.Key != "roles.storage.template" {
		t.Errorf("not exact: %+v, want the template's", o)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPlanDigest: the digest follows what the policies are compiled from,
// not how the inventory is written.
func TestPlanDigest(t *testing.T) {
	src := readFile(t, "../examples/site.toml")
	digest := func(t *testing.T, body string, opts Options) string {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "site.toml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return compileWith(t, path, opts).Digest()
	}
	base := digest(t, src, Default())
	if !strings.HasPrefix(base, "sha256:") || base != digest(t, src, Default()) {
		t.Fatalf("digest %q is not stable", base)
	}
	for _, tc := range []struct {
		name string
		body string
		opts Options
		same bool
	}{
		{"a comment", "# reviewed\n" + src, Default(), true},
		{"other spacing", strings.ReplaceAll(src, "role       = ", "role = "), Default(), true},
		{"a port more", strings.Replace(src, `{ from = "lb",  tcp = [80] }`, `{ from = "lb",  tcp = [80, 8080] }`, 1), Default(), false},
		{"an address", strings.Replace(src, `"198.18.0.32"`, `"198.18.0.33"`, 1), Default(), false},
		{"a setting", strings.Replace(src, `timeout     = "10s"`, `timeout     = "9s"`, 1), Default(), false},
		{"one rule per address", src, Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body == src && tc.opts == Default() {
				t.Fatal("the case changes nothing")
			}
			if got := digest(t, tc.body, tc.opts); (got == base) != tc.same {
				t.Errorf("same digest: %v, want %v", got == base, tc.same)
			}
		})
	}

	// A user template's text counts.
	dir := t.TempDir()
	custom := readFile(t, "../examples/custom.toml")
	tmpl := readFile(t, "../examples/templates/snmp.tmpl")
	write := func(tmpl string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "templates", "snmp.tmpl"), []byte(tmpl), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "custom.toml"), []byte(custom), 0o644); err != nil {
			t.Fatal(err)
		}
		return compile(t, filepath.Join(dir, "custom.toml")).Digest()
	}
	if write(tmpl) == write(strings.Replace(tmpl, "--dport 161", "--dport 162", 1)) {
		t.Error("a user template's change leaves the digest as it was")
	}
}
