package templates

import "testing"

func TestSourceLine(t *testing.T) {
	src := `{{/* A user template:
  -A INPUT -m nosuchmatch -j ACCEPT in a comment is not a line of it. */ -}}
{{template "fwpush.header" .}}
:INPUT DROP [0:0]
{{template "fwpush.input" .}}
{{- if eq .Family 4}}
-A INPUT -s 198.51.100.0/24 -i {{.Interfaces.Private}} -p udp -m nosuchmatch -j ACCEPT
-A INPUT -s {{.Tunnel.PrivateIP}}/32 -i {{.Interfaces.Private}} {{range .PublicTCP}}{{.Match}}{{end}} -j ACCEPT
{{- else}}
-A INPUT -i lo -j ACCEPT
{{- end}}
-A INPUT -i lo -j ACCEPT
{{.Host.Name}}
COMMIT`
	tests := []struct {
		rendered string
		want     int
	}{
		{"-A INPUT -s 198.51.100.0/24 -i eth1 -p udp -m nosuchmatch -j ACCEPT", 7},
		{"  -A INPUT -s 198.18.0.1/32 -i ens4 -p tcp -m tcp --dport 22 -j ACCEPT", 8},
		{":INPUT DROP [0:0]", 4},
		{"COMMIT", 14},
		// Written twice: which one wrote it cannot be told.
		{"-A INPUT -i lo -j ACCEPT", 0},
		// Written by a block of the built-in templates, or by an action only.
		{"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", 0},
		{"mysql-1", 0},
		{"", 0},
		// Literal text must start and end the line where the source does.
		{"-A INPUT -s 198.51.100.0/24 -i eth1 -p udp -m nosuchmatch -j ACCEPT --extra", 0},
	}
	for _, tt := range tests {
		if got := SourceLine(src, tt.rendered); got != tt.want {
			t.Errorf("SourceLine(%q) = %d, want %d", tt.rendered, got, tt.want)
		}
	}
}
