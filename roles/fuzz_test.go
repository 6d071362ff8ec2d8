package roles

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
)

// FuzzCompile renders whatever valid inventory the fuzzer makes, with a
// user template of its making for the roles that name a file. Nothing may
// panic; the same input compiles to the same policies (or problems) every
// time; every problem is one "file:line: key: message" line; with only
// built-in templates the only possible problem is a lockout (a tunnel role
// without SSH in public_tcp, say): the built-in templates render every
// valid inventory into policies that load. Rejected must take any line
// number of any policy.
func FuzzCompile(f *testing.F) {
	snmp, err := os.ReadFile(filepath.Join("..", "examples", "templates", "snmp.tmpl"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range []string{"site.toml", "large.toml", "custom.toml", "sites.toml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, string(snmp), 7)
	}
	f.Add([]byte(fleet), "*filter\n:INPUT DROP [0:0]\n{{.Host.Nmae}}\nCOMMIT\n", 0)
	f.Fuzz(func(t *testing.T, data []byte, tmpl string, line int) {
		const name = "fuzz.toml"
		inv, err := inventory.Parse(name, data)
		if err != nil {
			return
		}
		read := func(string) ([]byte, error) { return []byte(tmpl), nil }
		plan, err := Compile(inv, read)
		plan2, err2 := Compile(inv, read)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Compile is not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			builtinOnly := true
			for _, r := range inv.Roles {
				builtinOnly = builtinOnly && inventory.IsBuiltin(r.Template)
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(l, name+":") {
					t.Fatalf("problem without the file name: %q", l)
				}
				if builtinOnly && !strings.Contains(l, ": lockout: ") {
					t.Fatalf("the built-in templates fail a valid inventory: %s", l)
				}
			}
			return
		}
		if len(plan.Policies) != len(inv.Hosts) {
			t.Fatalf("%d policies for %d hosts", len(plan.Policies), len(inv.Hosts))
		}
		var rejections []Rejection
		for i, p := range plan.Policies {
			q := plan2.Policies[i]
			if p.Host.Name != inv.Hosts[i].Name || !bytes.Equal(p.V4, q.V4) || !bytes.Equal(p.V6, q.V6) {
				t.Fatalf("host %s renders differently twice", p.Host.Name)
			}
			rejections = append(rejections, Rejection{Host: p.Host.Name, Family: 4 + 2*(i%2), Line: line, Msg: "refused"})
		}
		err = plan.Rejected(rejections)
		if err == nil && len(rejections) > 0 {
			t.Fatal("rejections reported no problem")
		}
		if err != nil {
			for _, l := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(l, name+":") || !strings.Contains(l, "refused") {
					t.Fatalf("rejection line %q", l)
				}
			}
		}
		fuzzSets(t, inv, read)
	})
}

// fuzzSets compiles an inventory that compiles with one rule per address
// with sets too: with the built-in templates it compiles the same way,
// every set a policy matches is one it carries, named within ipset's
// limit with fwpush's prefix, and its ipset document reads back as the
// sets.
func fuzzSets(t *testing.T, inv *inventory.Inventory, read ReadFile) {
	plan, err := CompileHosts(inv, read, inv.Hosts, Options{Sets: true})
	if err != nil {
		for _, r := range inv.Roles {
			if !inventory.IsBuiltin(r.Template) {
				return // a user template may be written for addresses only
			}
		}
		t.Fatalf("with sets, the built-in templates fail an inventory they render without: %v", err)
	}
	for _, p := range plan.Policies {
		var names []string
		for _, doc := range [][]byte{p.V4, p.V6} {
			rs, err := policy.Parse(string(doc))
			if err != nil {
				t.Fatalf("%s: %v", p.Host.Name, err)
			}
			names = append(names, rs.SetNames()...)
		}
		slices.Sort(names)
		var carried []string
		for _, s := range p.Sets {
			if len(s.Name) > policy.MaxSetName || !strings.HasPrefix(s.Name, policy.SetPrefix) || len(s.Members) == 0 {
				t.Fatalf("%s: set %q with %d members", p.Host.Name, s.Name, len(s.Members))
			}
			carried = append(carried, s.Name)
		}
		if !slices.Equal(slices.Compact(names), carried) {
			t.Fatalf("%s matches sets %v and carries %v", p.Host.Name, names, carried)
		}
		back, err := policy.ParseSets(string(p.IPSets()))
		if err != nil || policy.CanonicalSets(back) != policy.CanonicalSets(p.Sets) {
			t.Fatalf("%s: the ipset document does not read back: %v\n%s", p.Host.Name, err, p.IPSets())
		}
	}
}
