package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/policy"
	"github.com/fwpush/fwpush/roles"
)

// The markers of the scale section of BENCHMARKS.md, which the scale part
// of the bench rewrites on its own.
const (
	ScaleBeginMarker = "<!-- scale:begin -->"
	ScaleEndMarker   = "<!-- scale:end -->"
)

// The hosts the scale part looks at in lab.FleetTOML's fleet: an app
// server's policy, and a db server's, before and after an app server is
// added.
const (
	scaleApp = "app-1"
	scaleDB  = "db-3"
)

// Scale is what the scale part measured at one fleet size, with no lab:
// compiling the fleet in the bench's own process (roles.CompileHosts with
// the default options: sets), `fwpush validate` of it as a process of its
// own, and the size of the policies it compiles.
type Scale struct {
	Hosts int `json:"hosts"`
	// Compile is each run of roles.CompileHosts over the whole fleet:
	// its wall time, the CPU of the bench's process meanwhile, and in
	// MaxRSS the bytes it allocated (not a peak: the compile runs in the
	// bench's process, whose peak is the bench's).
	Compile []Sample `json:"compile"`
	// Validate is each run of `fwpush validate`, from the launcher.
	Validate []Sample `json:"validate"`
	// Load is the least and greatest 1-minute load average seen before
	// each run.
	Load [2]float64 `json:"load"`
	// AppRules is the number of rules (-A lines) of app-1's IPv4 filter
	// table; AppRulesDigest a digest of those rules, to tell identical
	// rules from as many different ones; AppSets and AppMembers its sets
	// and their members.
	AppRules       int    `json:"app_rules"`
	AppRulesDigest string `json:"app_rules_digest"`
	AppSets        int    `json:"app_sets"`
	AppMembers     int    `json:"app_members"`
	// DB is what changes in db-3's policy when one app server joins the
	// fleet.
	DB Added `json:"db_when_app_added"`
}

// Added is how a host's compiled policy differs once a host joined: its
// rules (-A lines of both families, comments aside) and its sets.
type Added struct {
	RulesAdded     int `json:"rules_added"`
	RulesRemoved   int `json:"rules_removed"`
	SetsMade       int `json:"sets_made"`     // sets created, destroyed or made anew
	MembersAdded   int `json:"members_added"` // over every set
	MembersRemoved int `json:"members_removed"`
}

// measureScale measures every size of cfg.ScaleSizes, cfg.ScaleRuns runs
// each, the sizes interleaved run by run.
func measureScale(ctx context.Context, cfg Config, work string, res *Results) error {
	byHosts := map[int]*Scale{}
	for _, n := range cfg.ScaleSizes {
		s, err := scaleSizes(work, n)
		if err != nil {
			return fmt.Errorf("%d hosts: %w", n, err)
		}
		byHosts[n] = s
		res.Scale = append(res.Scale, s)
	}
	for run := 1; run <= cfg.ScaleRuns; run++ {
		for _, n := range cfg.ScaleSizes {
			s := byHosts[n]
			s.Load = widen(s.Load, loadAverage())
			c, err := measureCompile(n)
			if err != nil {
				return fmt.Errorf("%d hosts: compile: %w", n, err)
			}
			s.Compile = append(s.Compile, c)
			v, err := measureValidate(ctx, cfg, filepath.Join(work, fmt.Sprintf("fleet-%d.toml", n)), n)
			if err != nil {
				return fmt.Errorf("%d hosts: %w", n, err)
			}
			s.Validate = append(s.Validate, v)
			fmt.Fprintf(cfg.Log, "bench: scale, %d hosts, run %d/%d: compile %7.3fs  cpu %6.3fs  %6.0f MiB allocated; validate %7.3fs  cpu %6.3fs  rss %5.1f MiB\n",
				n, run, cfg.ScaleRuns, c.Wall.Seconds(), c.CPU.Seconds(), float64(c.MaxRSS)/(1<<20), v.Wall.Seconds(), v.CPU.Seconds(), float64(v.MaxRSS)/(1<<20))
		}
	}
	return nil
}

// scaleSizes writes the inventory of n hosts into work and reads the sizes
// of its policies: app-1's rules and sets, and what changes on db-3 when
// an app server is added.
func scaleSizes(work string, n int) (*Scale, error) {
	src := lab.FleetTOML(n)
	path := filepath.Join(work, fmt.Sprintf("fleet-%d.toml", n))
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return nil, err
	}
	plan, err := compileFleet(src, scaleApp, scaleDB)
	if err != nil {
		return nil, err
	}
	app, _ := plan.Policy(scaleApp)
	db, _ := plan.Policy(scaleDB)
	grown, err := compileFleet(withApp(src), scaleDB)
	if err != nil {
		return nil, fmt.Errorf("with an app server added: %w", err)
	}
	db2, _ := grown.Policy(scaleDB)
	if app == nil || db == nil || db2 == nil {
		return nil, fmt.Errorf("the fleet has no %s or %s", scaleApp, scaleDB)
	}
	rules := ruleLines(app.V4)
	digest := sha256.Sum256([]byte(strings.Join(rules, "\n")))
	s := &Scale{Hosts: n, AppRules: len(rules), AppRulesDigest: fmt.Sprintf("%x", digest[:8]), AppSets: len(app.Sets)}
	for _, set := range app.Sets {
		s.AppMembers += len(set.Members)
	}
	before := append(ruleLines(db.V4), ruleLines(db.V6)...)
	after := append(ruleLines(db2.V4), ruleLines(db2.V6)...)
	s.DB.RulesAdded, s.DB.RulesRemoved = countDiff(before, after)
	for _, c := range policy.DiffSets(db.Sets, db2.Sets) {
		if c.Create || c.Destroy || c.Recreate {
			s.DB.SetsMade++
		}
		s.DB.MembersAdded += len(c.Added)
		s.DB.MembersRemoved += len(c.Removed)
	}
	return s, nil
}

// compileFleet compiles the named hosts of an inventory, with sets.
func compileFleet(src []byte, hosts ...string) (*roles.Plan, error) {
	inv, err := inventory.Parse("fleet.toml", src)
	if err != nil {
		return nil, err
	}
	var hs []*inventory.Host
	for _, name := range hosts {
		h, ok := inv.Host(name)
		if !ok {
			return nil, fmt.Errorf("no host %s", name)
		}
		hs = append(hs, h)
	}
	return roles.CompileHosts(inv, nil, hs, roles.Default())
}

// withApp is an inventory of lab.FleetTOML with one more app server, at
// an address no size of it uses (it stays within lab.MaxHosts, 198.18.0.0
// to 198.18.49.255).
func withApp(src []byte) []byte {
	return append(slices.Clip(src), "\n[hosts.app-added]\nrole       = \"app\"\nprivate_ip = \"198.18.250.20\"\n"...)
}

// ruleLines are a document's rules, its -A lines.
func ruleLines(doc []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(doc), "\n") {
		if strings.HasPrefix(line, "-A ") {
			out = append(out, line)
		}
	}
	return out
}

// countDiff counts the lines of after that before lacks and those of
// before that after lacks, as multisets.
func countDiff(before, after []string) (added, removed int) {
	n := map[string]int{}
	for _, l := range before {
		n[l]++
	}
	for _, l := range after {
		n[l]--
	}
	for _, c := range n {
		if c < 0 {
			added -= c
		} else {
			removed += c
		}
	}
	return added, removed
}

// measureCompile compiles the fleet of n hosts once, in this process:
// the part of every command that is fwpush's own work (validate adds the
// reading of the file and the loads). MaxRSS holds the bytes allocated.
func measureCompile(n int) (Sample, error) {
	inv, err := inventory.Parse("fleet.toml", lab.FleetTOML(n))
	if err != nil {
		return Sample{}, err
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU()
	start := time.Now()
	plan, err := roles.CompileHosts(inv, nil, inv.Hosts, roles.Default())
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&after)
	if err != nil {
		return Sample{}, err
	}
	if len(plan.Policies) != n {
		return Sample{}, fmt.Errorf("%d policies compiled, not %d", len(plan.Policies), n)
	}
	return Sample{Wall: wall, CPU: cpu, MaxRSS: int64(after.TotalAlloc - before.TotalAlloc)}, nil
}

// processCPU is the user and system time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureValidate runs `fwpush validate` of the inventory at path, of n
// hosts, from the launcher, and makes sure that it loaded every policy
// and set with this machine's iptables-restore and ipset: a validate that
// could not would be measured doing less.
func measureValidate(ctx context.Context, cfg Config, path string, n int) (Sample, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cfg.FwPush, "validate", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s, err := launch(ctx, cfg.Launcher, cmd, 0)
	if err != nil {
		return Sample{}, fmt.Errorf("validate: %w", err)
	}
	want := fmt.Sprintf("iptables-restore takes all %d policies", 2*n)
	if !strings.Contains(stdout.String(), want) || !strings.Contains(stdout.String(), "ipset all") || stderr.Len() > 0 {
		return Sample{}, fmt.Errorf("validate did not load every policy and set here: stdout %q, stderr %q", stdout.String(), tail(stderr.Bytes()))
	}
	return s, nil
}

// loadAverage is the machine's 1-minute load average now; 0 if unknown.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	if _, err := fmt.Sscan(string(data), &l); err != nil {
		return 0
	}
	return l
}

// widen widens a range of load averages with l.
func widen(r [2]float64, l float64) [2]float64 {
	if l == 0 {
		return r
	}
	if r == [2]float64{} {
		return [2]float64{l, l}
	}
	return [2]float64{min(r[0], l), max(r[1], l)}
}
