package bench

import (
	"fmt"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/roles"
)

// BenchmarkCompile renders and lockout-checks every policy of an
// inventory of n hosts: the part of a push that is fwpush's own work
// (fwbench measures the pushes). Nothing here asserts a time.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{50, 500} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			inv, err := inventory.Parse("fleet.toml", lab.FleetTOML(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := roles.Compile(inv, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
		})
	}
}
