package explain

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

var modes = []struct {
	name string
	opts roles.Options
}{{"addresses", roles.Options{}}, {"sets", roles.Options{Sets: true}}}

func compile(t *testing.T, path string, opts roles.Options) *roles.Plan {
	t.Helper()
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.CompileHosts(inv, os.ReadFile, inv.Hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestMatrix: explain answers every probe of check's expected matrix of
// the examples as the matrix expects it, allowed and denied, cell for
// cell, with and without sets; and the rule it says decides is the one the
// matrix's reason names: the allow entry, public_tcp or the tunnel for an
// allowed probe, a chain's policy set by a role's template for a denied
// one.
func TestMatrix(t *testing.T) {
	for _, path := range []string{"../examples/site.toml", "../examples/sites.toml"} {
		for _, mode := range modes {
			t.Run(path+"/"+mode.name, func(t *testing.T) {
				plan := compile(t, path, mode.opts)
				inv := plan.Inventory
				e := New(plan)
				m := roles.Expect(inv)
				if len(m.Expectations) < 50 {
					t.Fatalf("the matrix has %d probes", len(m.Expectations))
				}
				allowed, denied := 0, 0
				for _, x := range m.Expectations {
					p, err := e.Expectation(x)
					if err != nil {
						t.Fatalf("%s -> %s %s:%d: %v", x.From, x.To, x.Addr, x.Port, err)
					}
					want := x.Want == roles.Reachable
					h := p.Decided()
					if p.Allowed != want || h == nil {
						t.Errorf("%s: %s, want %s (%s); %s", p.String(), Verdict(p.Allowed), Verdict(want), x.Why, p.Because(inv.Path))
						continue
					}
					if h.Origin.Line == 0 || h.Line == 0 || h.Rule == "" {
						t.Errorf("%s: the deciding rule is not known: %+v", p.String(), h)
					}
					if want {
						allowed++
						key := h.Origin.Key
						var ok bool
						switch {
						case strings.HasPrefix(x.Why, "roles."+x.ToRole+".allow:"):
							ok = strings.HasPrefix(key, "roles."+x.ToRole+".allow[")
						case strings.HasPrefix(x.Why, "roles."+x.ToRole+".public_tcp"):
							ok = key == "roles."+x.ToRole+".public_tcp"
						case strings.HasPrefix(x.Why, "SSH from the"):
							ok = key == "ssh.tunnel" || strings.HasPrefix(key, "sites.")
						}
						if !ok || h.Chain != "INPUT" || h.Host != x.To || h.Policy || h.Verdict != policy.Accept {
							t.Errorf("%s: allowed by %s, which is not what the matrix names: %s", p.String(), p.Because(inv.Path), x.Why)
						}
					} else {
						denied++
						host, _ := inv.Host(h.Host)
						if h.Verdict != policy.Drop || !h.Policy || h.Origin.Key != "roles."+host.Role+".template" || h.Origin.Template == "" {
							t.Errorf("%s: denied by %s, want a chain's policy from the template", p.String(), p.Because(inv.Path))
						}
					}
				}
				if allowed == 0 || denied == 0 {
					t.Errorf("%d probes allowed and %d denied: the matrix has both", allowed, denied)
				}

				// A cell, asked as roles: every path to the cell's
				// addresses as the cell expects.
				cells := map[roles.Cell]roles.Reach{}
				for _, x := range m.Expectations {
					if w, ok := cells[x.Cell()]; ok && w != x.Want {
						t.Fatalf("cell %v is mixed", x.Cell())
					}
					cells[x.Cell()] = x.Want
				}
				for c, want := range cells {
					from := c.From
					if from == roles.Controller {
						from = Internet
					}
					a, err := e.Explain(Query{From: from, To: c.To, Proto: "tcp", Port: c.Port})
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for _, p := range a.Paths {
						if p.Net != c.Net {
							continue
						}
						n++
						if p.Allowed != (want == roles.Reachable) {
							t.Errorf("cell %s -> %s: %s: %s, want %s: %s", c.From, c.Dest(), p.String(), Verdict(p.Allowed), want, p.Because(inv.Path))
						}
					}
					if n == 0 {
						t.Errorf("cell %s -> %s: no path", c.From, c.Dest())
					}
				}
			})
		}
	}
}

// TestExplain: the example's questions, answered with the rule and the
// entry of the inventory that decide them.
func TestExplain(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			plan := compile(t, "../examples/site.toml", mode.opts)
			e := New(plan)
			for _, tc := range []struct {
				q       Query
				allowed bool
				paths   int
				because []string // in the first path's Because, in part
			}{
				{Query{From: "wordpress-1", To: "mysql-1", Proto: "tcp", Port: 3306}, true, 1,
					[]string{"mysql-1 IPv4 INPUT line ", "--dport 3306 -j ACCEPT", "site.toml:67: roles.db.allow[0] ("}},
				{Query{From: "app", To: "db", Proto: "tcp", Port: 3306}, true, 4, []string{"roles.db.allow[0]"}},
				{Query{From: "wordpress-1", To: "mysql-1", Proto: "tcp", Port: 22}, false, 1,
					[]string{"mysql-1 IPv4 INPUT line 3: :INPUT DROP [0:0] (the chain's policy: no rule decides)", "site.toml:66: roles.db.template, private.tmpl:5"}},
				{Query{From: "tunnel-1", To: "mysql-2", Proto: "tcp", Port: 22}, true, 1, []string{"site.toml:12: ssh.tunnel (tunnel-1)"}},
				// The lb's OUTPUT drops what no role allows from it.
				{Query{From: "haproxy-www", To: "mysql-1", Proto: "tcp", Port: 3306}, false, 1,
					[]string{"haproxy-www IPv4 OUTPUT line 5: :OUTPUT DROP [0:0]", "roles.lb.template, public.tmpl:"}},
				{Query{From: "haproxy-www", To: "app", Proto: "tcp", Port: 80}, true, 2, []string{"site.toml:58: roles.app.allow[0]"}},
				{Query{From: Internet, To: "haproxy-www", Proto: "tcp", Port: 443}, true, 2, []string{"site.toml:53: roles.lb.public_tcp"}},
				{Query{From: Internet, To: "mysql-1", Proto: "tcp", Port: 3306}, false, 1, []string{"mysql-1 has no public address"}},
				{Query{From: "198.51.100.7", To: "wordpress-2", Proto: "tcp", Port: 9100}, true, 1, []string{"site.toml:61: roles.app.allow[3] (198.51.100.0/24)"}},
				{Query{From: "198.51.100.0/24", To: "app", Proto: "tcp", Port: 9100}, true, 2, []string{"roles.app.allow[3]"}},
				{Query{From: "198.51.100.0/23", To: "app", Proto: "tcp", Port: 9100}, false, 2, []string{":INPUT DROP"}},
				{Query{From: "198.51.100.0/23", To: "wordpress-1", Proto: "tcp", Port: 9100}, false, 1, []string{"part of 198.51.100.0/23 is allowed: 198.51.100.0, by line "}},
				{Query{From: "198.51.100.128/24", To: "wordpress-1", Proto: "tcp", Port: 9100}, true, 1, nil},
				{Query{From: "198.51.100.7", To: "mysql-1", Proto: "tcp", Port: 3306}, false, 1, []string{":INPUT DROP"}},
				{Query{From: "198.51.100.7", To: "haproxy-www", Proto: "tcp", Port: 443, Public: true}, true, 1, []string{"roles.lb.public_tcp"}},
				{Query{From: "2001:db8::7", To: "haproxy-www", Proto: "tcp", Port: 80}, true, 1, []string{"haproxy-www IPv6 INPUT"}},
				{Query{From: "wordpress-1", To: "wordpress-1", Proto: "tcp", Port: 5000}, true, 1, []string{"-A INPUT -i lo -j ACCEPT"}},
				{Query{From: "wordpress-1", To: "wordpress-2", Proto: "udp", Port: 53}, false, 1, []string{":INPUT DROP"}},
			} {
				a, err := e.Explain(tc.q)
				if err != nil {
					t.Fatalf("%+v: %v", tc.q, err)
				}
				if a.Allowed != tc.allowed || len(a.Paths) != tc.paths {
					t.Errorf("%+v: %s over %d paths, want %s over %d", tc.q, Verdict(a.Allowed), len(a.Paths), Verdict(tc.allowed), tc.paths)
					continue
				}
				because := a.Paths[0].Because("site.toml")
				for _, w := range tc.because {
					if !strings.Contains(because, w) {
						t.Errorf("%+v: %q lacks %q", tc.q, because, w)
					}
				}
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	e := New(compile(t, "../examples/site.toml", roles.Default()))
	for _, q := range []Query{
		{From: "nobody", To: "mysql-1", Proto: "tcp", Port: 22},
		{From: "app", To: "198.18.0.31", Proto: "tcp", Port: 22},
		{From: "198.51.100.0/33", To: "db", Proto: "tcp", Port: 22},
		{From: "app", To: "db", Proto: "icmp", Port: 1},
		{From: "app", To: "db", Proto: "tcp", Port: 0},
	} {
		if _, err := e.Explain(q); !errors.Is(err, ErrQuery) {
			t.Errorf("%+v: %v, want ErrQuery", q, err)
		}
	}
	for _, s := range []string{"tcp", "3306", "tcp/", "tcp/x", "sctp/1", "udp/70000"} {
		if _, _, err := ParsePort(s); !errors.Is(err, ErrQuery) {
			t.Errorf("ParsePort(%q): %v, want ErrQuery", s, err)
		}
	}
	if proto, port, err := ParsePort("udp/53"); proto != "udp" || port != 53 || err != nil {
		t.Errorf("ParsePort(udp/53) = %s, %d, %v", proto, port, err)
	}
}
