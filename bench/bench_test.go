package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/roles"
)

// BenchmarkCompile renders and lockout-checks every policy of an
// inventory of n hosts: the part of a push that is fwpush's own work
// (fwbench measures the pushes). With sets (one rule per flow) at 50, 500,
// 5,000 and 10,000 hosts; with one rule per address, which grows with the
// square of the fleet, at 50 and 500 only. It reports the rules of an app
// server's IPv4 policy (app-rules) and the members of its sets
// (app-members). Nothing here asserts a time.
func BenchmarkCompile(b *testing.B) {
	for _, mode := range []struct {
		name  string
		opts  roles.Options
		sizes []int
	}{
		{"sets", roles.Options{Sets: true}, []int{50, 500, 5000, 10000}},
		{"addresses", roles.Options{}, []int{50, 500}},
	} {
		for _, n := range mode.sizes {
			b.Run(fmt.Sprintf("%s/hosts=%d", mode.name, n), func(b *testing.B) {
				inv, err := inventory.Parse("fleet.toml", lab.FleetTOML(n))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				var plan *roles.Plan
				for b.Loop() {
					if plan, err = roles.CompileHosts(inv, nil, inv.Hosts, mode.opts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
				app, _ := plan.Policy("app-1")
				members := 0
				for _, s := range app.Sets {
					members += len(s.Members)
				}
				b.ReportMetric(float64(strings.Count(string(app.V4), "\n-A ")), "app-rules")
				b.ReportMetric(float64(members), "app-members")
			})
		}
	}
}

// BenchmarkCompileHost compiles one app server of an inventory of n hosts
// (render --host): its cost grows with the fleet only by reading it.
func BenchmarkCompileHost(b *testing.B) {
	for _, n := range []int{50, 500, 5000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			inv, err := inventory.Parse("fleet.toml", lab.FleetTOML(n))
			if err != nil {
				b.Fatal(err)
			}
			h, _ := inv.Host("app-1")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := roles.CompileHosts(inv, nil, []*inventory.Host{h}, roles.Options{Sets: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
