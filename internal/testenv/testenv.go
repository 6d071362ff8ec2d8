// Package testenv says what a test needs that a quick run does not give it:
// root (network namespaces, labs, iptables) or time. Under go test -short
// such tests skip, as root too, so that -short runs every quick test that
// needs no root; Main then says how many it left out.
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestInLab(t *testing.T) {
//		testenv.Root(t)
//		...
//	}
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// skipped counts the tests that skipped because of -short.
var skipped atomic.Int64

// Root skips the test under -short, and when this process is not root.
func Root(t testing.TB) {
	t.Helper()
	Short(t, "needs root")
	if os.Geteuid() != 0 {
		t.Skip("needs root (make test runs as root)")
	}
}

// Short skips the test under -short, saying why it is not quick: it needs
// root or a lab, or it takes seconds.
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		skipped.Add(1)
		t.Skipf("%s: skipped under -short", why)
	}
}

// Main runs the package's tests and exits with their status. Under -short
// it first prints how many tests Root and Short skipped, as
// "PACKAGE: N tests skipped under -short (need root or a lab, or are
// slow)"; go test shows it with -v or -json (make test-short does).
func Main(m *testing.M) {
	code := m.Run()
	if testing.Short() {
		fmt.Printf("%s: %d %s skipped under -short (need root or a lab, or are slow)\n", pkg(), skipped.Load(), plural(skipped.Load()))
	}
	os.Exit(code)
}

func plural(n int64) string {
	if n == 1 {
		return "test"
	}
	return "tests"
}

// pkg names the package under test by its directory relative to the
// module's root (go test runs a package's tests in its directory), or by
// the test binary's name outside a module.
func pkg() string {
	wd, err := os.Getwd()
	if err == nil {
		for dir := wd; ; {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if rel, err := filepath.Rel(dir, wd); err == nil {
					return filepath.ToSlash(rel)
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	name := filepath.Base(os.Args[0])
	return name[:len(name)-len(filepath.Ext(name))]
}
