package templates

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzData is one host of each kind the built-in templates know: a public
// host with IPv6, on the private network, in a fleet with a tunnel.
func fuzzData(family int) Data {
	d := Data{
		Family:     family,
		Host:       Host{Name: "haproxy-www", Role: "lb", PublicIP: "203.0.113.11", PrivateIP: "198.18.0.11", PublicIP6: "2001:db8::11"},
		Role:       Role{Name: "lb", Template: "public", PublicTCP: []int{80, 443}, LogDropped: true},
		Tunnel:     Tunnel{Name: "tunnel-1", PublicIP: "203.0.113.10", PrivateIP: "198.18.0.10", SSHPort: 22},
		Bastions:   []Tunnel{{Name: "tunnel-1", PublicIP: "203.0.113.10", PrivateIP: "198.18.0.10", SSHPort: 22}},
		Interfaces: Interfaces{Public: "eth0", Private: "eth1", HasPublic: true},
		SSHPort:    22,
		PublicTCP:  PortRules("", "", "tcp", []int{80, 443}),
	}
	if family == 4 {
		d.Ingress = PortRules("198.51.100.0/24", "198.51.100.0/24", "udp", []int{161})
		d.Ingress = append(d.Ingress, SetRules("fwp-app-4", "src", "app", "tcp", []int{8080})...)
		d.Egress = PortRules("198.18.0.21/32", "wordpress-1", "tcp", []int{80})
		d.Egress = append(d.Egress, SetRules("fwp-db-4", "dst", "db", "tcp", nil)...)
		d.CrossSite = PortRules("203.0.113.21/32", "app-1", "tcp", []int{443})
	} else {
		d.CrossSite = PortRules("2001:db8::21/128", "app-1", "tcp", []int{443})
	}
	return d
}

// FuzzRender feeds Parse and Render arbitrary user templates. Nothing may
// panic; a template renders the same bytes every time, tidied (no blank
// line, no trailing blank, a final newline); and SourceLine finds, for any
// rendered line, a line of the source or none.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"private", "public", "tunnel"} {
		src, _ := Builtin(name)
		f.Add(src)
	}
	user, err := os.ReadFile(filepath.Join("..", "examples", "templates", "snmp.tmpl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(user))
	f.Add("{{range .Ingress}}-A INPUT{{with .Peer}} -s {{.}}{{end}} {{.Match}} -j ACCEPT{{with .Set}} {{.}}{{end}}\n{{end}}")
	f.Add("{{range .Ingress}}-A INPUT -s {{.Peer}} {{.Match}} -j ACCEPT\n{{end}}{{join .Role.PublicTCP \",\"}}{{range list 1 2}}{{.}}{{end}}")
	f.Add("{{.Host.Nmae}}")
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Parse("fuzz.tmpl", src)
		if err != nil {
			return
		}
		for _, family := range []int{4, 6} {
			out, err := Render(tmpl, fuzzData(family))
			again, err2 := Render(tmpl, fuzzData(family))
			if (err == nil) != (err2 == nil) || !bytes.Equal(out, again) {
				t.Fatalf("IPv%d: renders differently twice: %q (%v), then %q (%v)", family, out, err, again, err2)
			}
			if err != nil {
				continue
			}
			if len(out) > 0 && out[len(out)-1] != '\n' {
				t.Fatalf("IPv%d: output does not end with a newline: %q", family, out)
			}
			lines := strings.Count(src, "\n") + 1
			for l := range strings.SplitSeq(strings.TrimSuffix(string(out), "\n"), "\n") {
				if len(out) == 0 {
					break
				}
				if strings.TrimSpace(l) == "" || strings.TrimRight(l, " \t\r") != l {
					t.Fatalf("IPv%d: untidy line %q in:\n%s", family, l, out)
				}
				if n := SourceLine(src, l); n < 0 || n > lines {
					t.Fatalf("SourceLine(%q) = %d for a %d-line source", l, n, lines)
				}
			}
		}
	})
}
