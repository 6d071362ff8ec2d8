package roles

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/policy"
)

// namespaces numbers the network namespaces of this process's tests.
var namespaces atomic.Int64

// netns creates a network namespace for this test and removes it when the
// test ends, pass or fail. Policies are loaded only there, never in the
// machine's own namespace.
func netns(t *testing.T) string {
	t.Helper()
	testenv.Short(t, "needs root")
	if os.Geteuid() != 0 {
		t.Skip("loading policies into a network namespace needs root (make test runs as root)")
	}
	name := fmt.Sprintf("fwp-rt-%d-%d", os.Getpid(), namespaces.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// TestPoliciesLoadForReal feeds every rendered policy of the example
// inventories to iptables-restore --test and ip6tables-restore --test,
// then loads it for real and checks that iptables-save gives it back
// unchanged: the templates write rules the way iptables-save does, which
// is what lets a run compare live and rendered rules. With sets, the
// policy's sets are loaded first with ipset restore, and ipset save gives
// them back unchanged too (CanonicalSets is what compares them).
//
// Policies that differ only in their comments (the hosts of a role, often)
// are loaded once: iptables-restore reads no comment. Each inventory and
// mode has a namespace of its own, and they run at once. The commands run
// from one script, testdata/load.sh, started once per inventory and mode
// in its namespace: a process costs more started from here, the more so
// through nsenter, and an inventory has up to 40 policies of 6 to 11
// commands each.
func TestPoliciesLoadForReal(t *testing.T) {
	testenv.Root(t)
	for _, mode := range modes {
		for _, path := range []string{"../examples/site.toml", "../examples/large.toml", "../examples/custom.toml", "../examples/sites.toml"} {
			t.Run(mode.name+"/"+strings.TrimPrefix(path, "../examples/"), func(t *testing.T) {
				t.Parallel()
				ns := netns(t)
				plan := compileWith(t, path, mode.opts)
				dir := t.TempDir()
				tried := map[string]bool{}
				var loaded []*Policy
				for _, p := range plan.Policies {
					key := withoutComments(p.V4) + "\x00" + withoutComments(p.V6) + "\x00" + string(p.IPSets())
					if tried[key] {
						continue
					}
					tried[key] = true
					loaded = append(loaded, p)
					files := map[string][]byte{"v4": p.V4, "v6": p.V6}
					if mode.opts.Sets {
						files["sets"] = p.IPSets()
					}
					writeFiles(t, filepath.Join(dir, p.Host.Name), files)
				}
				// nsenter enters the network namespace only: ip netns exec
				// would also make a mount namespace and mount /sys, which
				// takes long on a machine with many namespaces (labs of
				// other tests), and iptables needs neither.
				cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "sh", "testdata/load.sh", dir)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%s, %s: testdata/load.sh in %s: %v\n%s", mode.name, path, ns, err, stderr.String())
				}
				for _, p := range loaded {
					live := func(name string) string {
						t.Helper()
						data, err := os.ReadFile(filepath.Join(dir, p.Host.Name, name))
						if err != nil {
							t.Fatalf("%s, %s %s: %v (testdata/load.sh said: %s)", mode.name, path, p.Host.Name, err, stderr.String())
						}
						return string(data)
					}
					if mode.opts.Sets {
						sets, err := policy.ParseSets(live("sets.live"))
						if err != nil {
							t.Fatalf("%s, %s %s: ipset save: %v", mode.name, path, p.Host.Name, err)
						}
						if diff := cmp.Diff(policy.CanonicalSets(p.Sets), policy.CanonicalSets(sets)); diff != "" {
							t.Errorf("%s, %s %s: ipset save gives back different sets (-rendered +live):\n%s", mode.name, path, p.Host.Name, diff)
						}
					}
					for _, fam := range []struct {
						save, live string
						doc        []byte
					}{{"iptables-save", "v4.live", p.V4}, {"ip6tables-save", "v6.live", p.V6}} {
						if diff := cmp.Diff(policy.Canonical(string(fam.doc)), policy.Canonical(live(fam.live))); diff != "" {
							t.Errorf("%s, %s %s: %s gives back a different ruleset (-rendered +live):\n%s", mode.name, path, p.Host.Name, fam.save, diff)
						}
					}
				}
				t.Logf("%d policies, %d loaded", len(plan.Policies), len(loaded))
			})
		}
	}
}

// writeFiles makes directory dir with the files named in files.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// withoutComments is an iptables-restore document without its comment
// lines, which iptables-restore skips.
func withoutComments(doc []byte) string {
	var b strings.Builder
	for l := range strings.Lines(string(doc)) {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}
