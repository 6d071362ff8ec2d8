// Package bench measures fwpush where it matters to an operator: compiling
// a large inventory, and pushing to a fleet in the lab, both the first
// apply and the cron case where nothing changed. Run with `make bench`
// (as root, for the lab); nothing here asserts a time.
package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab/labtest"
	"github.com/fwpush/fwpush/roles"
)

// BenchmarkCompile renders and lockout-checks every policy of an
// inventory of n hosts.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{50, 500} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			inv, err := inventory.Parse("fleet.toml", labtest.FleetTOML(n))
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

// BenchmarkPush runs `fwpush run` from the lab's controller against a lab
// of n hosts: "apply" alternates between two policies so every host
// changes on every run; "unchanged" is the cron case.
func BenchmarkPush(b *testing.B) {
	fw := filepath.Join(b.TempDir(), "fwpush")
	if out, err := exec.Command("go", "build", "-o", fw, "../cmd/fwpush").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, n := range []int{6, 50} {
		dir := b.TempDir()
		a := filepath.Join(dir, "a.toml")
		c := filepath.Join(dir, "b.toml")
		src := labtest.FleetTOML(n)
		write(b, a, src)
		write(b, c, bytes.Replace(src, []byte("tcp = [3306]"), []byte("tcp = [3306, 33060]"), 1))
		inv, err := inventory.Load(a)
		if err != nil {
			b.Fatal(err)
		}
		l := labtest.StartInventory(b, inv)
		push := func(b *testing.B, path string) {
			cmd := l.Command(b.Context(), fw, "run", "--quiet", path)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("fwpush run: %v\n%s", err, out)
			}
		}
		b.Run(fmt.Sprintf("hosts=%d/apply", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				push(b, []string{a, c}[i%2])
				i++
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
		})
		push(b, a)
		b.Run(fmt.Sprintf("hosts=%d/unchanged", n), func(b *testing.B) {
			for b.Loop() {
				push(b, a)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "hosts/s")
		})
	}
}

func write(b *testing.B, path string, data []byte) {
	b.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}
