package roles

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
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

// inNetns runs a command in network namespace ns. Only the network
// namespace: ip netns exec would also make a mount namespace and mount
// /sys for each command, which takes long on a machine with many
// namespaces (labs of other tests), and iptables needs neither.
func inNetns(t *testing.T, ns string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, stderr.String())
	}
	return stdout.String()
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
// mode has a namespace of its own, and they run at once.
func TestPoliciesLoadForReal(t *testing.T) {
	testenv.Root(t)
	empty := map[string][]byte{"iptables-restore": []byte("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")}
	empty["ip6tables-restore"] = empty["iptables-restore"]
	for _, mode := range modes {
		for _, path := range []string{"../examples/site.toml", "../examples/large.toml", "../examples/custom.toml", "../examples/sites.toml"} {
			t.Run(mode.name+"/"+strings.TrimPrefix(path, "../examples/"), func(t *testing.T) {
				t.Parallel()
				ns := netns(t)
				plan := compileWith(t, path, mode.opts)
				tried := map[string]bool{}
				for _, p := range plan.Policies {
					key := withoutComments(p.V4) + "\x00" + withoutComments(p.V6) + "\x00" + string(p.IPSets())
					if tried[key] {
						continue
					}
					tried[key] = true
					if mode.opts.Sets {
						// The last policy's rules hold its sets: let go
						// of them before the sets go.
						for restore, doc := range empty {
							inNetns(t, ns, doc, restore, "-w")
						}
						inNetns(t, ns, nil, "ipset", "destroy")
						inNetns(t, ns, p.IPSets(), "ipset", "restore")
						live, err := policy.ParseSets(inNetns(t, ns, nil, "ipset", "save"))
						if err != nil {
							t.Fatal(err)
						}
						if diff := cmp.Diff(policy.CanonicalSets(p.Sets), policy.CanonicalSets(live)); diff != "" {
							t.Errorf("%s %s: ipset save gives back different sets (-rendered +live):\n%s", path, p.Host.Name, diff)
						}
					}
					for _, fam := range []struct {
						restore, save string
						doc           []byte
					}{{"iptables-restore", "iptables-save", p.V4}, {"ip6tables-restore", "ip6tables-save", p.V6}} {
						inNetns(t, ns, fam.doc, fam.restore, "-w", "--test")
						inNetns(t, ns, fam.doc, fam.restore, "-w")
						live := inNetns(t, ns, nil, fam.save, "-t", "filter")
						if diff := cmp.Diff(policy.Canonical(string(fam.doc)), policy.Canonical(live)); diff != "" {
							t.Errorf("%s, %s %s: %s gives back a different ruleset (-rendered +live):\n%s", mode.name, path, p.Host.Name, fam.save, diff)
						}
					}
				}
				t.Logf("%d policies, %d loaded", len(plan.Policies), len(tried))
			})
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
