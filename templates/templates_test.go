package templates

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPortRules(t *testing.T) {
	tests := []struct {
		ports []int
		want  []string
	}{
		{nil, []string{"-p tcp"}},
		{[]int{80}, []string{"-p tcp -m tcp --dport 80"}},
		{[]int{80, 443}, []string{"-p tcp -m multiport --dports 80,443"}},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, []string{
			"-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
			"-p tcp -m tcp --dport 16",
		}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range PortRules("198.18.0.1/32", "h", "tcp", tt.ports) {
			got = append(got, r.Match)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("PortRules(%v) (-want +got):\n%s", tt.ports, diff)
		}
	}
}

func TestSetRules(t *testing.T) {
	tests := []struct {
		dir   string
		ports []int
		want  []string
	}{
		{"src", nil, []string{"-p tcp -m set --match-set fwp-app-4 src"}},
		{"src", []int{80}, []string{"-p tcp -m set --match-set fwp-app-4 src -m tcp --dport 80"}},
		{"dst", []int{80, 443}, []string{"-p tcp -m set --match-set fwp-app-4 dst -m multiport --dports 80,443"}},
		{"src", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, []string{
			"-p tcp -m set --match-set fwp-app-4 src -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
			"-p tcp -m set --match-set fwp-app-4 src -m tcp --dport 16",
		}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range SetRules("fwp-app-4", tt.dir, "app", "tcp", tt.ports) {
			if r.Peer != "" || r.Set != "fwp-app-4" || r.PeerName != "app" {
				t.Errorf("SetRules: peer %q, set %q, name %q", r.Peer, r.Set, r.PeerName)
			}
			got = append(got, r.Match)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("SetRules(%s, %v) (-want +got):\n%s", tt.dir, tt.ports, diff)
		}
	}
}

func TestBuiltin(t *testing.T) {
	for _, name := range []string{"private", "public", "tunnel"} {
		if _, ok := Builtin(name); !ok {
			t.Errorf("built-in template %q is missing", name)
		}
	}
	for _, name := range []string{"base", "nope", ""} {
		if _, ok := Builtin(name); ok {
			t.Errorf("Builtin(%q) exists; only role templates should", name)
		}
	}
}

// A user template can call the shared blocks, and its layout (blank lines,
// trailing spaces) never reaches the output.
func TestRenderUserTemplate(t *testing.T) {
	tmpl, err := Parse("mine.tmpl", "{{template \"fwpush.header\" .}}   \n\n:INPUT DROP [0:0]\n{{if eq .Family 4}}-A INPUT -s {{.Tunnel.PrivateIP}}/32 -j ACCEPT{{end}}\n\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	data := Data{Family: 4, Host: Host{Name: "h"}, Role: Role{Name: "r"}, Tunnel: Tunnel{PrivateIP: "198.18.0.1"}}
	got, err := Render(tmpl, data)
	if err != nil {
		t.Fatal(err)
	}
	want := "# fwpush policy for h (role r), IPv4. Generated: edit the inventory, not this file.\n*filter\n:INPUT DROP [0:0]\n-A INPUT -s 198.18.0.1/32 -j ACCEPT\nCOMMIT\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	if _, err := Render(tmpl, Data{Family: 6}); err != nil {
		t.Errorf("IPv6 render: %v", err)
	}
	// missingkey=error: a misspelt field is an error, not an empty string.
	bad, err := Parse("bad.tmpl", "{{.Host.Nmae}}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(bad, data); err == nil || !strings.Contains(err.Error(), "bad.tmpl:1") {
		t.Errorf("render of a misspelt field: %v", err)
	}
}
