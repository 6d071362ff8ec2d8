package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse feeds the loader arbitrary bytes. It must never panic; what it
// accepts must be an inventory the rest of fwpush can rely on without
// checking again; what it refuses must be an *Error whose every line names
// the file; and the same input must always give the same answer.
func FuzzParse(f *testing.F) {
	var ex string
	for _, file := range []string{"site.toml", "large.toml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if file == "site.toml" {
			ex = string(data)
		}
	}
	for _, variant := range []string{
		// Per-host overrides, a udp-only allow, a bare address as source.
		strings.Replace(ex, "[hosts.wordpress-1]\n", "[hosts.wordpress-1]\nport = 2222\nuser = \"deploy\"\npublic_iface = \"ens3\"\nprivate_iface = \"ens4\"\n", 1),
		strings.Replace(ex, `{ from = "db",  tcp = [3306] },`, `{ from = "db", udp = [53] }, { from = "198.51.100.7" },`, 1),
		// The db role's allows as array tables.
		strings.Replace(ex, "allow = [ { from = \"app\", tcp = [3306] }, { from = \"db\", tcp = [3306] } ]",
			"[[roles.db.allow]]\nfrom = \"app\"\ntcp = [3306]\n[[roles.db.allow]]\nfrom = \"db\"\ntcp = [3306]", 1),
		// Dotted keys and an inline table.
		"ssh.tunnel = \"t\"\nhosts.t = { role = \"tunnel\", public_ip = \"203.0.113.1\" }\nroles.tunnel.template = \"tunnel\"\n",
		// Only the tunnel, on one line each.
		"[ssh]\ntunnel = \"t\"\n[hosts.t]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.1\"\n[roles.tunnel]\ntemplate = \"tunnel\"\n",
	} {
		if variant == ex {
			f.Fatal("a seed variant no longer changes the example")
		}
		f.Add([]byte(variant))
	}
	for _, tc := range badInventories {
		f.Add([]byte(strings.TrimPrefix(tc.toml, "\n")))
	}
	for _, tc := range warnInventories {
		f.Add([]byte(strings.TrimPrefix(tc.toml, "\n")))
	}
	for _, tc := range lineDocs {
		f.Add([]byte(tc.src))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// keyLines recovers from its own panics; the scanner underneath
		// must not need to.
		newScanner(string(data)).document()

		const name = "fuzz.toml"
		inv, err := Parse(name, data)
		if err != nil {
			checkError(t, name, data, err)
			if _, again := Parse(name, data); again == nil || again.Error() != err.Error() {
				t.Fatalf("errors are not deterministic:\n%v\nthen:\n%v", err, again)
			}
			return
		}
		checkInventory(t, name, data, inv)
		again, err := Parse(name, data)
		if err != nil {
			t.Fatalf("second Parse of the same input failed: %v", err)
		}
		if diff := cmp.Diff(inv, again, cmpAddrs); diff != "" {
			t.Fatalf("Parse is not deterministic (-first +second):\n%s", diff)
		}
	})
}

func checkError(t *testing.T, name string, data []byte, err error) {
	t.Helper()
	var ierr *Error
	if !errors.As(err, &ierr) {
		t.Fatalf("error is a %T, want *Error: %v", err, err)
	}
	if ierr.File != name || len(ierr.Problems) == 0 {
		t.Fatalf("error for %q with %d problems: %v", ierr.File, len(ierr.Problems), err)
	}
	lines := strings.Count(strings.TrimPrefix(string(data), "\xef\xbb\xbf"), "\n") + 1
	for i, p := range ierr.Problems {
		if p.Msg == "" || p.Line < 0 || p.Line > lines || p.Col < 0 {
			t.Fatalf("problem %+v in a %d-line input", p, lines)
		}
		if i > 0 && p.Line < ierr.Problems[i-1].Line {
			t.Fatalf("problems not sorted by line: %v", err)
		}
		// An unknown key is always written somewhere.
		if strings.HasPrefix(p.Msg, "unknown key") && p.Line == 0 {
			t.Fatalf("unknown key without a line: %+v", p)
		}
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(l, name+":") {
			t.Fatalf("error line without the file name: %q", l)
		}
	}
}

// checkInventory asserts what the rest of fwpush takes for granted.
func checkInventory(t *testing.T, name string, data []byte, inv *Inventory) {
	t.Helper()
	if inv.Path != name {
		t.Fatalf("Path = %q", inv.Path)
	}
	s := inv.SSH
	if s.Port < 1 || s.Port > 65535 || s.Parallel < 1 || s.Parallel > 1000 ||
		s.Timeout < time.Second || s.Timeout > MaxTimeout || s.RollbackAfter < 5*time.Second || s.RollbackAfter > MaxRollbackAfter ||
		s.RollbackAfter < s.Timeout*3/2 || s.User == "" {
		t.Fatalf("ssh settings out of range: %+v", s)
	}
	lines := strings.Count(string(data), "\n") + 1
	for i, w := range inv.Warnings {
		if !w.Warning || w.Msg == "" || w.Key == "" || w.Line < 0 || w.Line > lines || i > 0 && w.Line < inv.Warnings[i-1].Line {
			t.Fatalf("warning %d of %d: %+v", i, len(inv.Warnings), w)
		}
		if got := w.Format(name); !strings.HasPrefix(got, name+":") || !strings.Contains(got, ": warning: ") || strings.Contains(got, "\n") {
			t.Fatalf("warning line %q", got)
		}
	}
	if !ValidIface(inv.Interfaces.Public) || !ValidIface(inv.Interfaces.Private) || inv.Interfaces.Public == inv.Interfaces.Private {
		t.Fatalf("interfaces: %+v", inv.Interfaces)
	}
	tunnel := inv.Tunnel()
	if tunnel == nil || !tunnel.PublicIP.Is4() {
		t.Fatalf("tunnel %q missing or without a public IPv4 address", s.Tunnel)
	}
	if len(inv.Hosts) > 1 && !tunnel.PrivateIP.IsValid() {
		t.Fatalf("tunnel %q without a private IP in a fleet of %d", tunnel.Name, len(inv.Hosts))
	}
	if !slices.IsSortedFunc(inv.Hosts, func(a, b *Host) int { return strings.Compare(a.Name, b.Name) }) ||
		!slices.IsSortedFunc(inv.Roles, func(a, b *Role) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("hosts or roles not sorted by name")
	}
	seen := map[string]bool{}
	for _, h := range inv.Hosts {
		if !validName(h.Name) {
			t.Fatalf("host name %q", h.Name)
		}
		if _, ok := inv.Role(h.Role); !ok {
			t.Fatalf("host %s has role %q, which does not exist", h.Name, h.Role)
		}
		if h != tunnel && !h.PrivateIP.Is4() {
			t.Fatalf("host %s without a private IPv4 address", h.Name)
		}
		if h.PublicIP.IsValid() && !h.PublicIP.Is4() || h.PublicIP6.IsValid() && (!h.PublicIP6.Is6() || h.PublicIP6.Is4In6()) {
			t.Fatalf("host %s: public addresses of the wrong family: %v %v", h.Name, h.PublicIP, h.PublicIP6)
		}
		for _, ip := range []string{h.PublicIP.String(), h.PrivateIP.String(), h.PublicIP6.String()} {
			if ip == "invalid IP" {
				continue
			}
			if seen[ip] {
				t.Fatalf("address %s used twice", ip)
			}
			seen[ip] = true
		}
		if !ValidIface(h.PublicIface) || !ValidIface(h.PrivateIface) || h.PublicIface == h.PrivateIface {
			t.Fatalf("host %s interfaces %q %q", h.Name, h.PublicIface, h.PrivateIface)
		}
		if h.Port < 1 || h.Port > 65535 || h.User == "" {
			t.Fatalf("host %s: port %d, user %q", h.Name, h.Port, h.User)
		}
	}
	for _, r := range inv.Roles {
		if !validName(r.Name) || r.Template == "" {
			t.Fatalf("role %q with template %q", r.Name, r.Template)
		}
		checkPorts(t, r.Name+" public_tcp", r.PublicTCP)
		for i, a := range r.Allow {
			if (a.FromRole != "") == a.FromCIDR.IsValid() {
				t.Fatalf("role %s allow[%d] from %q: role %q, CIDR %v: want exactly one", r.Name, i, a.From, a.FromRole, a.FromCIDR)
			}
			if _, ok := inv.Role(a.FromRole); a.FromRole != "" && !ok {
				t.Fatalf("role %s allow[%d] from role %q, which does not exist", r.Name, i, a.FromRole)
			}
			if a.FromCIDR.IsValid() && (!a.FromCIDR.Addr().Is4() || a.FromCIDR.Masked() != a.FromCIDR || a.FromCIDR.Bits() == 0) {
				t.Fatalf("role %s allow[%d] from CIDR %v", r.Name, i, a.FromCIDR)
			}
			if a.AllTCP != (a.TCP == nil && a.UDP == nil) || a.TCP != nil && len(a.TCP) == 0 || a.UDP != nil && len(a.UDP) == 0 {
				t.Fatalf("role %s allow[%d]: AllTCP %v with tcp %v, udp %v", r.Name, i, a.AllTCP, a.TCP, a.UDP)
			}
			checkPorts(t, r.Name+" tcp", a.TCP)
			checkPorts(t, r.Name+" udp", a.UDP)
		}
	}
}

func checkPorts(t *testing.T, what string, ports []int) {
	t.Helper()
	for i, p := range ports {
		if p < 1 || p > 65535 || i > 0 && p <= ports[i-1] {
			t.Fatalf("%s: ports %v not in range, sorted and distinct", what, ports)
		}
	}
}
