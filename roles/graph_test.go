package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/inventory"
)

// TestGraphGolden compares fwpush graph's DOT for the examples with
// testdata/NAME.dot. Run with -update after a deliberate change.
func TestGraphGolden(t *testing.T) {
	for _, name := range []string{"site", "custom", "sites"} {
		t.Run(name, func(t *testing.T) {
			inv, err := inventory.Load(filepath.Join("..", "examples", name+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			got := Graph(inv)
			file := filepath.Join("testdata", name+".dot")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./roles -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from the golden file (-want +got):\n%s", file, diff)
			}
		})
	}
}

func TestGraph(t *testing.T) {
	got := string(Graph(parse(t, fleet)))
	tests := []struct {
		name string
		want string
		ok   bool
	}{
		{"internet reaches the public roles' public_tcp", `"internet" -> "role lb" [label="tcp 443", penwidth=2];`, true},
		{"internet reaches the tunnel's SSH", `"internet" -> "role tunnel" [label="tcp 22", penwidth=2];`, true},
		{"the tunnel reaches every role's SSH ports", `"role tunnel" -> "role app" [label="ssh 22,2222"`, true},
		{"flows merge per pair, one line each", `"role app" -> "role db" [label="tcp 5432"];`, true},
		{"UDP flows are drawn", `"role app" -> "role app" [label="udp 24007"];`, true},
		{"CIDR sources are nodes", `"net 198.51.100.0/24" [shape=note, fillcolor="#ffffff", label="198.51.100.0/24"];`, true},
		{"an entry with no port list opens all TCP", `"net 198.51.100.0/24" -> "role db" [label="tcp all"];`, true},
		{"the tunnel host gets no SSH edge to itself", `"role tunnel" -> "role tunnel"`, false},
		{"roles without public addresses are not on the internet", `"internet" -> "role app"`, false},
	}
	for _, tt := range tests {
		if strings.Contains(got, tt.want) != tt.ok {
			t.Errorf("%s: contains %q = %v, want %v; graph:\n%s", tt.name, tt.want, !tt.ok, tt.ok, got)
		}
	}
	if again := string(Graph(parse(t, fleet))); again != got {
		t.Error("two graphs of one inventory differ")
	}
}

// Sites are clusters, each with its own node per role; a flow between
// sites is a bold edge from one cluster to the other; bastions reach their
// own site only.
func TestGraphSites(t *testing.T) {
	inv, err := inventory.Load("../examples/sites.toml")
	if err != nil {
		t.Fatal(err)
	}
	got := string(Graph(inv))
	for _, tt := range []struct {
		want string
		ok   bool
	}{
		{"subgraph \"cluster site east\" {\n    label=\"site east\";", true},
		{"    \"role db in west\" [label=\"db\\n2 hosts · private\"];\n", true},
		{`"role app in east" -> "role db in west" [label="tcp 3306", penwidth=2, style=bold];`, true},
		{`"role tunnel in east" -> "role tunnel in east" [label="ssh 22"`, true}, // the bastions reach each other
		{`"role tunnel in west" -> "role tunnel in west"`, false},                // one bastion does not reach itself
		{`"role tunnel in east" -> "role db`, false},
		{`"role app in west"`, false}, // west has no app server
	} {
		if strings.Contains(got, tt.want) != tt.ok {
			t.Errorf("contains %q = %v, want %v; graph:\n%s", tt.want, !tt.ok, tt.ok, got)
		}
	}
}

func TestGraphQuotes(t *testing.T) {
	for in, want := range map[string]string{
		`app`:        `"app"`,
		`a"b`:        `"a\"b"`,
		`a\b`:        `"a\\b"`,
		"two\nlines": `"two\nlines"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}
