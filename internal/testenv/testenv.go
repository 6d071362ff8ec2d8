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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// Main runs the package's tests and exits with their status, in an
// environment of their own (see Isolate). Under -short it first prints
// how many tests Root and Short skipped, as "PACKAGE: N tests skipped
// under -short (need root or a lab, or are slow)"; go test shows it with
// -v or -json (make test-short does). The functions given run after the
// tests, before it exits, and removes the programs Build made.
func Main(m *testing.M, after ...func()) {
	restore, err := Isolate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	restore()
	if testing.Short() {
		fmt.Printf("%s: %d %s skipped under -short (need root or a lab, or are slow)\n", pkg(), skipped.Load(), plural(skipped.Load()))
	}
	os.Exit(code)
}

// operatorEnv are the variables of the operator's session that fwpush
// reads: their keys, agent, config, and fwpush's own settings.
var operatorEnv = []string{
	"SSH_AUTH_SOCK", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
	"FWPUSH_IDENTITY", "FWPUSH_KNOWN_HOSTS", "FWPUSH_PARALLEL", "FWPUSH_TIMEOUT",
	"FWPUSH_ROLLBACK_AFTER", "FWPUSH_BECOME_PASS", "FWPUSH_CPUPROFILE", "FWPUSH_MEMPROFILE",
}

// isolatedHome is set to HOME when Isolate made it.
const isolatedHome = "FWPUSH_TEST_HOME"

// Isolate makes the tests of this process independent of the account that
// runs them, as on a CI machine: HOME is an empty directory of their own
// (no ~/.ssh keys, config or known_hosts), and the operator's ssh-agent,
// XDG directories and FWPUSH_ settings are unset. Go's own caches stay
// where they were, for the tests that run go. restore removes the
// directory. A test binary that a test runs again (a helper) is isolated
// already, and keeps its parent's directory.
func Isolate() (restore func(), err error) {
	if home := os.Getenv(isolatedHome); home != "" && home == os.Getenv("HOME") {
		return func() {}, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	oldHome, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	config, err := os.UserConfigDir()
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]string{
		"GOCACHE": filepath.Join(cache, "go-build"),
		"GOPATH":  filepath.Join(oldHome, "go"),
		"GOENV":   filepath.Join(config, "go", "env"),
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	home, err := os.MkdirTemp("", "fwpush-test-home-")
	if err != nil {
		return nil, err
	}
	os.Setenv("HOME", home)
	os.Setenv(isolatedHome, home)
	for _, k := range operatorEnv {
		os.Unsetenv(k)
	}
	return func() { os.RemoveAll(home) }, nil
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

// builds are the programs Build makes, by name, in dir, which Main
// removes at the end.
var builds struct {
	mu   sync.Mutex
	dir  string
	made map[string]func() (string, error)
}

// Build builds the Go package pkg (a path as go build takes it, from the
// test's directory) with go build and args into a program called name,
// once per test binary however many tests ask for it (a link of fwpush
// costs seconds of CPU), and returns its path: the first call for a name
// says how it is built. The programs are in a directory that Main
// removes at the end.
func Build(name, pkg string, args ...string) (string, error) {
	made, err := build(name, pkg, args)
	if err != nil {
		return "", err
	}
	return made()
}

// build returns the function that builds name once.
func build(name, pkg string, args []string) (func() (string, error), error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.made == nil {
		dir, err := os.MkdirTemp("", "fwpush-test-bin-")
		if err != nil {
			return nil, err
		}
		builds.dir, builds.made = dir, map[string]func() (string, error){}
	}
	if made := builds.made[name]; made != nil {
		return made, nil
	}
	bin := filepath.Join(builds.dir, name)
	made := sync.OnceValues(func() (string, error) {
		gobin, err := exec.LookPath("go")
		if err != nil {
			return "", fmt.Errorf("go is needed to build %s for the tests: %w", name, err)
		}
		args := append(append([]string{"build", "-o", bin}, args...), pkg)
		start := time.Now()
		if out, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		fmt.Fprintf(os.Stderr, "%s built for the tests in %s\n", name, time.Since(start).Round(time.Millisecond))
		return bin, nil
	})
	builds.made[name] = made
	return made, nil
}
