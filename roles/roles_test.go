package roles

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// compile compiles one rule per address (Options{}): the rules these
// tests read name each peer; sets_test.go compiles with sets.
func compile(t *testing.T, path string) *Plan {
	t.Helper()
	return compileWith(t, path, Options{})
}

// perAddress is Compile with one rule per address.
func perAddress(inv *inventory.Inventory, read func(string) ([]byte, error)) (*Plan, error) {
	return CompileHosts(inv, read, inv.Hosts, Options{})
}

func compileWith(t *testing.T, path string, opts Options) *Plan {
	t.Helper()
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := CompileHosts(inv, os.ReadFile, inv.Hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// modes are the two ways policies are compiled: one rule per address, and
// one rule per flow matching sets. Every test of both runs in both.
var modes = []struct {
	name string
	opts Options
}{{"addresses", Options{}}, {"sets", Options{Sets: true}}}

func parse(t *testing.T, src string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestGolden compares every rendered policy of the example with
// testdata/site/NAME.rules.v{4,6}, and with sets, with
// testdata/site-sets/NAME.rules.v{4,6} and NAME.ipsets. Run with -update
// after a deliberate change and review the diff.
func TestGolden(t *testing.T) {
	for _, mode := range []struct {
		dir  string
		opts Options
	}{{"site", Options{}}, {"site-sets", Options{Sets: true}}} {
		plan := compileWith(t, "../examples/site.toml", mode.opts)
		dir := filepath.Join("testdata", mode.dir)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		files := 0
		for _, p := range plan.Policies {
			docs := map[string][]byte{"rules.v4": p.V4, "rules.v6": p.V6}
			if sets := p.IPSets(); sets != nil {
				docs["ipsets"] = sets
			}
			for ext, got := range docs {
				files++
				file := filepath.Join(dir, p.Host.Name+"."+ext)
				if *update {
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test ./roles -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s differs from the golden file (-want +got):\n%s", file, diff)
				}
			}
		}
		if !*update {
			on, _ := filepath.Glob(filepath.Join(dir, "*"))
			if len(on) != files {
				t.Errorf("%s holds %d files, the example renders %d: remove stale golden files", dir, len(on), files)
			}
		}
	}
}

// TestGoldenExamples compares every policy of the other examples with one
// golden file each, testdata/NAME.rules (and NAME.sets.rules with sets,
// which holds the sets too): the policies of inventories that predate a
// feature must not change when it lands.
func TestGoldenExamples(t *testing.T) {
	for _, name := range []string{"large", "custom", "sites"} {
		for _, mode := range modes {
			t.Run(name+"/"+mode.name, func(t *testing.T) {
				plan := compileWith(t, filepath.Join("..", "examples", name+".toml"), mode.opts)
				var got bytes.Buffer
				for _, p := range plan.Policies {
					fmt.Fprintf(&got, "=== %s IPv4\n%s=== %s IPv6\n%s", p.Host.Name, p.V4, p.Host.Name, p.V6)
					if sets := p.IPSets(); sets != nil {
						fmt.Fprintf(&got, "=== %s ipsets\n%s", p.Host.Name, sets)
					}
				}
				file := filepath.Join("testdata", name+".rules")
				if mode.opts.Sets {
					file = filepath.Join("testdata", name+".sets.rules")
				}
				if *update {
					if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test ./roles -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), got.String()); diff != "" {
					t.Errorf("%s differs from the golden file (-want +got):\n%s", file, diff)
				}
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, mode := range modes {
		for _, path := range []string{"../examples/site.toml", "../examples/large.toml", "../examples/custom.toml", "../examples/sites.toml"} {
			a, b := compileWith(t, path, mode.opts), compileWith(t, path, mode.opts)
			for i := range a.Policies {
				if !bytes.Equal(a.Policies[i].V4, b.Policies[i].V4) || !bytes.Equal(a.Policies[i].V6, b.Policies[i].V6) || !bytes.Equal(a.Policies[i].IPSets(), b.Policies[i].IPSets()) {
					t.Errorf("%s, %s: %s renders differently twice", mode.name, path, a.Policies[i].Host.Name)
				}
			}
		}
	}
}

const fleet = `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.lb]
role = "lb"
public_ip = "203.0.113.2"
private_ip = "198.18.0.2"
[hosts.a1]
role = "app"
private_ip = "198.18.0.3"
[hosts.a2]
role = "app"
private_ip = "198.18.0.4"
port = 2222
[hosts.d]
role = "db"
private_ip = "198.18.0.5"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.lb]
template = "public"
public_tcp = [443]
[roles.app]
template = "private"
allow = [ { from = "lb", tcp = [80, 8080] }, { from = "app", udp = [24007] } ]
[roles.db]
template = "private"
allow = [ { from = "app", tcp = [5432] }, { from = "198.51.100.0/24" } ]
`

func TestFlows(t *testing.T) {
	var got []string
	for _, f := range Flows(parse(t, fleet)) {
		got = append(got, fmt.Sprintf("%s -> %s %s %v", f.Source(), f.To, f.Proto, f.Ports))
	}
	// Roles in name order, allow entries in the order written; no port
	// list at all means every TCP port.
	want := []string{
		"lb -> app tcp [80 8080]",
		"app -> app udp [24007]",
		"app -> db tcp [5432]",
		"198.51.100.0/24 -> db tcp []",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
}

// rules returns the -A lines of a rendered policy.
func rules(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return out
}

func TestRenderedRules(t *testing.T) {
	plan, err := perAddress(parse(t, fleet), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host     string
		v4       bool
		contains []string
		absent   []string
	}{
		{host: "lb", v4: true, contains: []string{
			"-A INPUT -s 198.18.0.1/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -i eth0 -p tcp -m tcp --dport 443 -j ACCEPT",
			// egress derived from app's "from lb" entry
			"-A OUTPUT -d 198.18.0.3/32 -o eth1 -p tcp -m multiport --dports 80,8080 -j ACCEPT",
			"-A OUTPUT -d 198.18.0.4/32 -o eth1 -p tcp -m multiport --dports 80,8080 -j ACCEPT",
			"-A OUTPUT -d 198.18.0.1/32 -o eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
		}, absent: []string{"-d 198.18.0.5/32"}},
		{host: "a1", v4: true, contains: []string{
			"-A INPUT -s 198.18.0.2/32 -i eth1 -p tcp -m multiport --dports 80,8080 -j ACCEPT",
			"-A INPUT -s 198.18.0.4/32 -i eth1 -p udp -m udp --dport 24007 -j ACCEPT",
		}, absent: []string{"-s 198.18.0.3/32", "-i eth0"}},
		{host: "a2", v4: true, contains: []string{
			"-A INPUT -s 198.18.0.1/32 -i eth1 -p tcp -m tcp --dport 2222 -j ACCEPT",
		}},
		{host: "d", v4: true, contains: []string{
			"-A INPUT -s 198.51.100.0/24 -i eth1 -p tcp -j ACCEPT",
			"-A INPUT -s 198.18.0.3/32 -i eth1 -p tcp -m tcp --dport 5432 -j ACCEPT",
		}},
		{host: "t", v4: true, contains: []string{
			"-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -s 198.18.0.4/32 -i eth1 -p tcp -m tcp --sport 2222 -j ACCEPT",
		}, absent: []string{"--dport 22 -j ACCEPT\n-A INPUT -s 198.18.0.1/32"}},
		// No public_ip6 anywhere: nothing is open on IPv6 but ICMPv6.
		{host: "t", contains: []string{"-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"}, absent: []string{"--dport"}},
		{host: "lb", absent: []string{"--dport 443"}},
	}
	for _, tt := range tests {
		p, ok := plan.Policy(tt.host)
		if !ok {
			t.Fatalf("no policy for %s", tt.host)
		}
		doc := p.V6
		if tt.v4 {
			doc = p.V4
		}
		got := rules(doc)
		for _, want := range tt.contains {
			if !slices.Contains(got, want) {
				t.Errorf("%s IPv%d lacks %q; has:\n%s", tt.host, map[bool]int{true: 4, false: 6}[tt.v4], want, strings.Join(got, "\n"))
			}
		}
		for _, bad := range tt.absent {
			if strings.Contains(string(doc), bad) {
				t.Errorf("%s IPv%d has %q:\n%s", tt.host, map[bool]int{true: 4, false: 6}[tt.v4], bad, doc)
			}
		}
	}
}

func TestManyPortsSplitIntoMultiportChunks(t *testing.T) {
	var ports []string
	for p := 1000; p < 1020; p++ {
		ports = append(ports, fmt.Sprint(p))
	}
	src := strings.Replace(fleet, "tcp = [5432]", "tcp = ["+strings.Join(ports, ", ")+"]", 1)
	plan, err := perAddress(parse(t, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := plan.Policy("d")
	var chunks []string
	for _, r := range rules(p.V4) {
		if strings.HasPrefix(r, "-A INPUT -s 198.18.0.3/32") {
			chunks = append(chunks, r)
		}
	}
	want := []string{
		"-A INPUT -s 198.18.0.3/32 -i eth1 -p tcp -m multiport --dports " + strings.Join(ports[:15], ",") + " -j ACCEPT",
		"-A INPUT -s 198.18.0.3/32 -i eth1 -p tcp -m multiport --dports " + strings.Join(ports[15:], ",") + " -j ACCEPT",
	}
	if diff := cmp.Diff(want, chunks); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
}

func TestTemplateErrors(t *testing.T) {
	files := map[string]string{
		"bad-parse.tmpl": "*filter\n{{if .Family}}\nCOMMIT\n",
		"bad-field.tmpl": "*filter\n:INPUT DROP [0:0]\n{{.Host.Nmae}}\nCOMMIT\n",
		"no-ssh.tmpl":    "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n",
		"nat.tmpl":       "*nat\nCOMMIT\n",
		"chain.tmpl": "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b-own - [0:0]\n" +
			"{{template \"fwpush.input\" .}}\n-A INPUT -j f2b-own\n-A f2b-own -j RETURN\nCOMMIT\n",
	}
	read := func(path string) ([]byte, error) {
		if s, ok := files[filepath.Base(path)]; ok {
			return []byte(s), nil
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
	}
	db := func(tmpl string) []string {
		return []string{"[roles.db]\ntemplate = \"private\"", "[roles.db]\ntemplate = \"tpl/" + tmpl + "\""}
	}
	app := func(tmpl string) []string {
		return []string{"[roles.app]\ntemplate = \"private\"", "[roles.app]\ntemplate = \"tpl/" + tmpl + "\""}
	}
	tests := []struct {
		name    string
		replace [][]string
		want    []string
	}{
		{"missing", [][]string{db("missing.tmpl")}, []string{"test.toml:32: roles.db.template: open tpl/missing.tmpl: file does not exist"}},
		{"missing for two roles", [][]string{db("missing.tmpl"), app("missing.tmpl")}, []string{
			"test.toml:29: roles.app.template: open tpl/missing.tmpl: file does not exist",
			"test.toml:32: roles.db.template: open tpl/missing.tmpl: file does not exist",
		}},
		{"parse error", [][]string{db("bad-parse.tmpl")}, []string{"test.toml:32: roles.db.template: tpl/bad-parse.tmpl:4: unexpected EOF"}},
		{"execution error", [][]string{db("bad-field.tmpl")}, []string{
			`test.toml:32: roles.db.template: tpl/bad-field.tmpl:3:7: executing "tpl/bad-field.tmpl" at <.Host.Nmae>: can't evaluate field Nmae in type templates.Host (IPv4, host d)`,
		}},
		{"execution error on every host of a role", [][]string{app("bad-field.tmpl")}, []string{
			`test.toml:29: roles.app.template: tpl/bad-field.tmpl:3:7: executing "tpl/bad-field.tmpl" at <.Host.Nmae>: can't evaluate field Nmae in type templates.Host (IPv4, hosts a1 and a2)`,
		}},
		{"lockout", [][]string{db("no-ssh.tmpl"), app("no-ssh.tmpl")}, []string{
			"test.toml:29: roles.app.template: host a1: lockout: the IPv4 policy does not accept SSH from the tunnel (198.18.0.1) to 198.18.0.3:22 on eth1 without conntrack (INPUT chain: drop): fwpush would lock itself out",
			"test.toml:29: roles.app.template: host a2: lockout: the IPv4 policy does not accept SSH from the tunnel (198.18.0.1) to 198.18.0.4:2222 on eth1 without conntrack (INPUT chain: drop): fwpush would lock itself out",
			"test.toml:32: roles.db.template: host d: lockout: the IPv4 policy does not accept SSH from the tunnel (198.18.0.1) to 198.18.0.5:22 on eth1 without conntrack (INPUT chain: drop): fwpush would lock itself out",
		}},
		{"tunnel without SSH in public_tcp", [][]string{{"[roles.tunnel]\ntemplate = \"tunnel\"\npublic_tcp = [22]", "[roles.tunnel]\ntemplate = \"tunnel\"\npublic_tcp = [443]"}}, []string{
			"test.toml:24: roles.tunnel.public_tcp: host t: lockout: the IPv4 policy does not accept SSH from anywhere to 203.0.113.1:22 on eth0 without conntrack (INPUT chain: drop): fwpush would lock itself out; add 22 to public_tcp",
		}},
		{"a preserve pattern that matches a chain of the policy", [][]string{
			{"[roles.app]\ntemplate = \"private\"", "[roles.app]\ntemplate = \"tpl/chain.tmpl\"\npreserve = [\"DOCKER*\", \"f2b-*\"]"},
		}, []string{
			`test.toml:30: roles.app.preserve[1]: "f2b-*" matches chain f2b-own, which the policy of hosts a1 and a2 declares: a chain fwpush writes is not kept for another program; narrow the pattern, or rename the chain in the template`,
		}},
		{"other table", [][]string{db("nat.tmpl")}, []string{
			`test.toml:32: roles.db.template: tpl/nat.tmpl:1: fwpush refuses the IPv4 policy of host d: table "nat": fwpush manages the filter table only (nat, mangle and raw are never touched) (d, line 1: *nat)`,
			`test.toml:32: roles.db.template: tpl/nat.tmpl:1: fwpush refuses the IPv6 policy of host d: table "nat": fwpush manages the filter table only (nat, mangle and raw are never touched) (d, line 1: *nat)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fleet
			for _, r := range tt.replace {
				if !strings.Contains(src, r[0]) {
					t.Fatalf("the fleet has no %q", r[0])
				}
				src = strings.Replace(src, r[0], r[1], 1)
			}
			_, err := Compile(parse(t, src), read)
			var ierr *inventory.Error
			if !errors.As(err, &ierr) {
				t.Fatalf("got %v, want an *inventory.Error", err)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLockoutIsAnError(t *testing.T) {
	inv := parse(t, fleet)
	plan, err := Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Policies {
		if errs := Lockout(inv, p.Host, p); len(errs) > 0 {
			t.Errorf("built-in policy of %s: %v", p.Host.Name, errs)
		}
	}
	// Take SSH from the tunnel out of one policy: the check must notice.
	p, _ := plan.Policy("a1")
	cut := *p
	cut.V4 = []byte(strings.Replace(string(p.V4), "-A INPUT -s 198.18.0.1/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT\n", "", 1))
	errs := Lockout(inv, p.Host, &cut)
	if len(errs) != 1 || !errors.Is(errs[0], ErrLockout) {
		t.Fatalf("Lockout = %v, want one ErrLockout", errs)
	}
	// A tunnel that does not open SSH publicly locks everyone out.
	tp, _ := plan.Policy("t")
	noPub := *tp
	noPub.V4 = []byte(strings.Replace(string(tp.V4), "-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT\n", "", 1))
	if errs := Lockout(inv, tp.Host, &noPub); len(errs) != 1 {
		t.Fatalf("Lockout of a closed tunnel = %v, want one error", errs)
	}
}

// What iptables-restore refuses is reported at the role's template, with
// the template line that wrote the refused rule when it can be told, and
// the hosts that the same line fails together.
func TestRejected(t *testing.T) {
	tmpl := "{{template \"fwpush.header\" .}}\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"{{template \"fwpush.input\" .}}\n-A INPUT -m nosuchmatch -j ACCEPT\nCOMMIT\n"
	read := func(string) ([]byte, error) { return []byte(tmpl), nil }
	src := strings.Replace(fleet, "[roles.app]\ntemplate = \"private\"", "[roles.app]\ntemplate = \"tpl/nosuch.tmpl\"", 1)
	plan, err := Compile(parse(t, src), read)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Rejected(nil); err != nil {
		t.Errorf("no rejections: %v", err)
	}
	line := func(host string, family int, rule string) int {
		t.Helper()
		p, _ := plan.Policy(host)
		doc := p.V4
		if family == 6 {
			doc = p.V6
		}
		i := slices.Index(strings.Split(string(doc), "\n"), rule)
		if i < 0 {
			t.Fatalf("%s's IPv%d policy has no %q", host, family, rule)
		}
		return i + 1
	}
	const msg = "Couldn't load match `nosuchmatch':No such file or directory"
	nosuch := "-A INPUT -m nosuchmatch -j ACCEPT"
	err = plan.Rejected([]Rejection{
		{Host: "a1", Family: 4, Line: line("a1", 4, nosuch), Msg: msg},
		{Host: "a2", Family: 4, Line: line("a2", 4, nosuch), Msg: msg},
		{Host: "a1", Family: 6, Line: line("a1", 6, nosuch), Msg: msg},
		// Built-in templates' lines are not the operator's to fix.
		{Host: "d", Family: 4, Line: 3, Msg: "weird"},
		// The kernel's refusal comes at COMMIT: no template line wrote it.
		{Host: "a2", Family: 6, Line: line("a2", 6, "COMMIT"), Msg: "Chain 'X' does not exist"},
		{Host: "t", Family: 4, Msg: "no line"},
	})
	want := []string{
		"test.toml:23: roles.tunnel.template: iptables-restore refuses the IPv4 policy of host t: no line",
		"test.toml:29: roles.app.template: tpl/nosuch.tmpl:6: iptables-restore refuses the IPv4 policy of hosts a1 and a2: " + msg + " (a1, line 15: " + nosuch + ")",
		"test.toml:29: roles.app.template: tpl/nosuch.tmpl:6: ip6tables-restore refuses the IPv6 policy of host a1: " + msg + " (a1, line 16: " + nosuch + ")",
		"test.toml:29: roles.app.template: ip6tables-restore refuses the IPv6 policy of host a2 at line 17 (COMMIT): Chain 'X' does not exist",
		"test.toml:32: roles.db.template: iptables-restore refuses the IPv4 policy of host d at line 3 (:INPUT DROP [0:0]): weird",
	}
	var ierr *inventory.Error
	if !errors.As(err, &ierr) {
		t.Fatalf("got %v, want an *inventory.Error", err)
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// In an inventory of sites, every host accepts SSH from each bastion of its
// own site on the private interface; a bastion hears the replies of its
// site's hosts only; a flow between sites arrives on the public interface
// from the sources' public addresses, in each family both ends have.
func TestRenderedSites(t *testing.T) {
	plan := compile(t, "../examples/sites.toml")
	tests := []struct {
		host     string
		family   int
		contains []string
		absent   []string
	}{
		{host: "app-1", family: 4, contains: []string{
			"-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -s 198.18.0.12/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -s 198.18.0.22/32 -i eth1 -p tcp -j ACCEPT",
		}, absent: []string{"198.19.", "-i eth0"}},
		// the standby takes SSH from the other bastion, and not from itself
		{host: "bastion-e2", family: 4, contains: []string{
			"-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
			"-A INPUT -s 198.18.0.21/32 -i eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
			"-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
		}, absent: []string{"-s 198.18.0.12/32", "198.19."}},
		{host: "bastion-w1", family: 4, contains: []string{
			"-A INPUT -s 198.19.0.31/32 -i eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
		}, absent: []string{"198.18.", "--dport 22 -j ACCEPT\n-A INPUT -s"}},
		{host: "db-1", family: 4, contains: []string{
			"-A INPUT -s 198.19.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT",
			"-A INPUT -s 198.19.0.32/32 -i eth1 -p tcp -m tcp --dport 3306 -j ACCEPT",
			"-A INPUT -s 203.0.113.21/32 -i eth0 -p tcp -m tcp --dport 3306 -j ACCEPT",
			"-A INPUT -s 203.0.113.22/32 -i eth0 -p tcp -m tcp --dport 3306 -j ACCEPT",
		}, absent: []string{"198.18."}},
		{host: "db-1", family: 6, contains: []string{
			"-A INPUT -s 2001:db8::21/128 -i eth0 -p tcp -m tcp --dport 3306 -j ACCEPT",
		}},
		{host: "db-2", family: 6, absent: []string{"--dport"}}, // no public_ip6: nothing crosses on IPv6
		// the lb's egress stays on its own site's private network
		{host: "www-1", family: 4, contains: []string{
			"-A OUTPUT -d 198.18.0.21/32 -o eth1 -p tcp -m tcp --dport 80 -j ACCEPT",
			"-A OUTPUT -d 198.18.0.10/32 -o eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
			"-A OUTPUT -d 198.18.0.12/32 -o eth1 -p tcp -m tcp --sport 22 -j ACCEPT",
			"-A OUTPUT -o eth0 -j ACCEPT",
		}},
	}
	for _, tt := range tests {
		p, ok := plan.Policy(tt.host)
		if !ok {
			t.Fatalf("no policy for %s", tt.host)
		}
		doc := map[int][]byte{4: p.V4, 6: p.V6}[tt.family]
		got := rules(doc)
		for _, want := range tt.contains {
			if !slices.Contains(got, want) {
				t.Errorf("%s IPv%d lacks %q; has:\n%s", tt.host, tt.family, want, strings.Join(got, "\n"))
			}
		}
		for _, bad := range tt.absent {
			if strings.Contains(string(doc), bad) {
				t.Errorf("%s IPv%d has %q:\n%s", tt.host, tt.family, bad, doc)
			}
		}
	}

	// Without SSH from the standby, a host could not be reached when the
	// first bastion is down: that is a lockout too.
	inv := plan.Inventory
	p, _ := plan.Policy("app-2")
	cut := *p
	cut.V4 = []byte(strings.Replace(string(p.V4), "-A INPUT -s 198.18.0.12/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT\n", "", 1))
	errs := Lockout(inv, p.Host, &cut)
	want := "lockout: the IPv4 policy does not accept SSH from the tunnel bastion-e2 (198.18.0.12) to 198.18.0.22:22 on eth1 without conntrack (INPUT chain: drop): fwpush would lock itself out"
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("Lockout = %v, want %q", errs, want)
	}
	for _, p := range plan.Policies {
		if errs := Lockout(inv, p.Host, p); len(errs) > 0 {
			t.Errorf("built-in policy of %s: %v", p.Host.Name, errs)
		}
	}
}
