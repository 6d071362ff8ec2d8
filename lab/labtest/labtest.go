// Package labtest brings labs up for end-to-end tests and takes them down
// when the test ends. Tests that use it need root; without it (or without
// network namespaces) they are skipped.
//
//	l := labtest.Start(t, "../examples/site.toml")
//	out, err := l.Exec(t.Context(), "fwpush", "run", "../examples/site.toml")
//	r := labtest.Probe(t, l, "stranger", "198.18.0.31", 3306)
package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

// Require skips the test unless this machine can run labs.
func Require(t testing.TB) {
	t.Helper()
	if err := lab.CheckRoot(); err != nil {
		t.Skipf("no lab here: %v", err)
	}
}

var seq atomic.Int64

// Name returns a lab name no other running test uses: tests of several
// packages run at once, each in a process of its own.
func Name() string {
	return fmt.Sprintf("t%x-%d", os.Getpid(), seq.Add(1))
}

// Start brings up a lab for the inventory at path and takes it down when
// the test and its subtests end, whether they pass or not. Options, if
// given, shape its hosts (root login, sudo, packages, files: see
// lab.Options); without, the hosts are as lab up makes them.
func Start(t testing.TB, path string, opts ...lab.Options) *lab.Lab {
	t.Helper()
	Require(t)
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return StartInventory(t, inv, opts...)
}

// StartInventory is Start for an inventory already loaded.
func StartInventory(t testing.TB, inv *inventory.Inventory, opts ...lab.Options) *lab.Lab {
	t.Helper()
	Require(t)
	var o lab.Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		t.Fatalf("labtest: %d sets of options, want at most one", len(opts))
	}
	l, err := lab.New(inv, Name(), o)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	t.Cleanup(func() {
		// The test's context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Down(ctx); err != nil {
			t.Errorf("labtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return l
}

// Exec runs a command on the lab's controller and returns its stdout,
// failing the test if it fails.
func Exec(t testing.TB, l *lab.Lab, name string, arg ...string) string {
	t.Helper()
	out, err := l.Exec(t.Context(), name, arg...)
	if err != nil {
		t.Fatalf("labtest: controller: %v", err)
	}
	return string(out)
}

// Shell runs a command inside a host and returns its stdout, failing the
// test if it fails.
func Shell(t testing.TB, l *lab.Lab, host, name string, arg ...string) string {
	t.Helper()
	out, err := l.Shell(t.Context(), host, name, arg...)
	if err != nil {
		t.Fatalf("labtest: %s: %v", host, err)
	}
	return string(out)
}

// Reboot reboots a host of the lab (see lab.Lab.Reboot), failing the test
// if it fails, and returns what the boot ran.
func Reboot(t testing.TB, l *lab.Lab, host string) string {
	t.Helper()
	if err := l.Reboot(t.Context(), host); err != nil {
		t.Fatalf("labtest: %v", err)
	}
	log, err := l.BootLog(host)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return log
}

// Probe tells whether addr:port is reachable from node from (a host,
// lab.Controller or lab.Stranger), failing the test on an error.
func Probe(t testing.TB, l *lab.Lab, from, addr string, port int) lab.Reachability {
	t.Helper()
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		t.Fatalf("labtest: probe: %v", err)
	}
	r, err := l.Probe(t.Context(), from, ip, port)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return r
}

// Fleet writes an inventory of n hosts (n >= 2) to a file of the test's and
// returns its path; see FleetTOML.
func Fleet(t testing.TB, n int) string {
	t.Helper()
	path := t.TempDir() + "/fleet.toml"
	if err := os.WriteFile(path, FleetTOML(n), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// FleetTOML returns an inventory of n hosts (n >= 2) shaped like the
// tutorial's; see lab.FleetTOML.
func FleetTOML(n int) []byte { return lab.FleetTOML(n) }
