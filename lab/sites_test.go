package lab_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// A lab of sites: each site's private network is a segment of its own, with
// a stranger of its own, and the public network is shared. Nothing routes
// from one site's private network to another's.
func TestSitesLab(t *testing.T) {
	t.Parallel()
	l := labtest.Start(t, "../examples/sites.toml")
	labtest.Expect(t, l, []labtest.Want{
		{"bastion-e1", "198.18.0.21", 22, lab.Reachable}, // east's private network
		{"bastion-w1", "198.19.0.31", 22, lab.Reachable}, // west's
		{"app-1", "198.19.0.31", 3306, lab.Filtered},     // east has no way into west's private network
		{"app-1", "203.0.113.31", 22, lab.Reachable},     // but reaches its public addresses
		{"app-1", "2001:db8::31", 22, lab.Reachable},
		{"db-1", "198.18.0.21", 22, lab.Filtered},
		{"stranger", "198.18.0.21", 22, lab.Reachable}, // the first site's stranger
		{"stranger@west", "198.19.0.31", 3306, lab.Reachable},
		{"stranger@west", "198.18.0.21", 22, lab.Filtered},
		{"stranger@east", "198.19.0.31", 22, lab.Filtered},
		{lab.Controller, "203.0.113.31", 22, lab.Reachable},
		{lab.Controller, "198.19.0.31", 22, lab.Filtered},
	})
	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	if !st.Up || !slices.Contains(names, "stranger@west") {
		t.Errorf("status: up %v, nodes %s", st.Up, strings.Join(names, " "))
	}
}
