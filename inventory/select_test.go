package inventory

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelect(t *testing.T) {
	inv, err := Load(filepath.Join("..", "examples", "site.toml"))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"haproxy-www", "mysql-1", "mysql-2", "tunnel-1", "wordpress-1", "wordpress-2"}
	tests := []struct {
		pattern string
		want    []string
		err     string // a part of the error; "" for none
	}{
		{pattern: "", want: all},
		{pattern: "all", want: all},
		{pattern: "*", want: all},
		{pattern: "mysql-1", want: []string{"mysql-1"}},
		{pattern: "db", want: []string{"mysql-1", "mysql-2"}},
		{pattern: "db,haproxy-www", want: []string{"haproxy-www", "mysql-1", "mysql-2"}},
		{pattern: "db:haproxy-www", want: []string{"haproxy-www", "mysql-1", "mysql-2"}},
		{pattern: " db , lb ,", want: []string{"haproxy-www", "mysql-1", "mysql-2"}},
		{pattern: "mysql-1,db", want: []string{"mysql-1", "mysql-2"}}, // each host once, in inventory order
		{pattern: "wordpress-2,mysql-1", want: []string{"mysql-1", "wordpress-2"}},
		// globs match host names and role names
		{pattern: "mysql-*", want: []string{"mysql-1", "mysql-2"}},
		{pattern: "db*", want: []string{"mysql-1", "mysql-2"}},
		{pattern: "*-1", want: []string{"mysql-1", "tunnel-1", "wordpress-1"}},
		{pattern: "wordpress-?", want: []string{"wordpress-1", "wordpress-2"}},
		{pattern: "[lt]*", want: []string{"haproxy-www", "tunnel-1"}}, // role lb, host tunnel-1 and role tunnel
		// exclusions, in any position
		{pattern: "mysql-*,!mysql-2", want: []string{"mysql-1"}},
		{pattern: "!mysql-2,mysql-*", want: []string{"mysql-1"}},
		{pattern: "!tunnel-1", want: []string{"haproxy-www", "mysql-1", "mysql-2", "wordpress-1", "wordpress-2"}},
		{pattern: "!tunnel,!db", want: []string{"haproxy-www", "wordpress-1", "wordpress-2"}},
		{pattern: "all:!*-2", want: []string{"haproxy-www", "mysql-1", "tunnel-1", "wordpress-1"}},
		// intersections, before exclusions whatever the order
		{pattern: "*-1,&db", want: []string{"mysql-1"}},
		{pattern: "&app", want: []string{"wordpress-1", "wordpress-2"}},
		{pattern: "!wordpress-1,app,db,&*-1", want: []string{"mysql-1"}},
		// mistakes: every term that matches nothing is named
		{pattern: "mysq-2", err: `"mysq-2" matches no host or role; did you mean "mysql-2"?`},
		{pattern: "mysql-*,!mysq-2", err: `"!mysq-2" matches no host or role; did you mean "!mysql-2"?`},
		{pattern: "db,&nope", err: `"&nope" matches no host or role`},
		{pattern: "dbb,&ap", err: `"dbb" matches no host or role; did you mean "db"?; "&ap" matches no host or role; did you mean "&app"?`},
		{pattern: "a,b", err: `"a" matches no host or role; "b" matches no host or role`},
		{pattern: "zz*", err: `"zz*" matches no host or role`},
		{pattern: "db,!", err: `"!": an empty name`},
		{pattern: "db[", err: `"db[": not a valid glob`},
		{pattern: "db,&app", err: `"db,&app" selects no host`},
		{pattern: "db,!db", err: `"db,!db" selects no host`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			hosts, err := inv.Select(tt.pattern)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Select(%q) = %v, %v; want an error containing %q", tt.pattern, hostNames(hosts), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Select(%q): %v", tt.pattern, err)
			}
			if diff := cmp.Diff(tt.want, hostNames(hosts)); diff != "" {
				t.Errorf("Select(%q) (-want +got):\n%s", tt.pattern, diff)
			}
		})
	}
}

func hostNames(hosts []*Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

// Excluded names what the '!' terms leave out, whatever the other terms
// select: check keeps away from those hosts entirely.
func TestExcluded(t *testing.T) {
	inv, err := Load(filepath.Join("..", "examples", "site.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for pattern, want := range map[string][]string{
		"":                   nil,
		"db":                 nil,
		"!tunnel-1":          {"tunnel-1"},
		"app,!wordpress-2":   {"wordpress-2"},
		"!db,!haproxy-*,app": {"haproxy-www", "mysql-1", "mysql-2"},
		"&db,!mysql-1":       {"mysql-1"},
	} {
		if diff := cmp.Diff(want, inv.Excluded(pattern)); diff != "" {
			t.Errorf("Excluded(%q) (-want +got):\n%s", pattern, diff)
		}
	}
}

// A site's name selects its hosts, as a role's does.
func TestSelectSites(t *testing.T) {
	inv, err := Load(filepath.Join("..", "examples", "sites.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for pattern, want := range map[string][]string{
		"west":         {"bastion-w1", "db-1", "db-2"},
		"west,&db":     {"db-1", "db-2"},
		"!east":        {"bastion-w1", "db-1", "db-2"},
		"e*,!bastion*": {"app-1", "app-2", "www-1"},
	} {
		hosts, err := inv.Select(pattern)
		if err != nil {
			t.Fatalf("Select(%q): %v", pattern, err)
		}
		if diff := cmp.Diff(want, hostNames(hosts)); diff != "" {
			t.Errorf("Select(%q) (-want +got):\n%s", pattern, diff)
		}
	}
	if _, err := inv.Select("north"); err == nil || err.Error() != `"north" matches no host, role or site` {
		t.Errorf("Select(north): %v", err)
	}
	if _, err := inv.Select("!wets"); err == nil || err.Error() != `"!wets" matches no host, role or site; did you mean "!west"?` {
		t.Errorf("Select(!wets): %v", err)
	}
}
