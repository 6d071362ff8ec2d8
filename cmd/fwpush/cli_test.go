package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/testenv"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

const exampleSite = "../../examples/site.toml"

func TestVersionFrom(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	info := func(version string, s []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/fwpush/fwpush", Version: version}, Settings: s}
	}
	rev := "3c2f1601a2b3c4d5e6f708192a3b4c5d6e7f8091"
	tests := []struct {
		name     string
		injected string
		info     *debug.BuildInfo
		want     string
	}{
		{"make injects", "v1.2.0-3-g3c2f160-dirty", info("v1.1.0", nil), "v1.2.0-3-g3c2f160-dirty"},
		{"go install module@version", "dev", info("v1.2.0", nil), "v1.2.0"},
		{"go build in a checkout: a pseudo-version", "dev", info("v0.0.0-20260101120000-3c2f1601a2b3+dirty", settings("vcs.revision", rev, "vcs.modified", "true")), "v0.0.0-20260101120000-3c2f1601a2b3+dirty"},
		{"an older go build in a checkout", "dev", info("(devel)", settings("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")), "dev-3c2f1601a2b3"},
		{"with changes", "", info("(devel)", settings("vcs.revision", rev, "vcs.modified", "true")), "dev-3c2f1601a2b3-dirty"},
		{"nothing recorded", "dev", info("(devel)", nil), "dev"},
		{"no build info", "dev", nil, "dev"},
	}
	for _, tt := range tests {
		if got := versionFrom(tt.injected, tt.info); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	want := "fwpush " + fullVersion() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if code, out, errs := fwpush(t, args...); code != exitOK || out != want {
			t.Errorf("fwpush %v: exit %d, stdout %q (want %q), stderr %q", args, code, out, want, errs)
		}
	}
	// -v is --verbose (of run and check), never the version.
	if code, out, _ := fwpush(t, "-v"); code != exitInvalid || out != "" {
		t.Errorf("fwpush -v: exit %d, stdout %q; want a usage error", code, out)
	}
}

// TestVersionInBinary builds fwpush as go build does in a checkout, and
// asks it its version: the commit.
func TestVersionInBinary(t *testing.T) {
	testenv.Short(t, "builds fwpush")
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to build fwpush: %v", err)
	}
	build := func(t *testing.T, args ...string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "fwpush")
		// A normal build, as make's, never -race: the end-to-end tests'
		// build of fwpush (builtCLI) compiles the same packages, so that
		// each build here is a link; a -race one links for seconds more.
		args = append([]string{"build", "-o", bin}, args...)
		if out, err := exec.Command(gobin, append(args, ".")...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("fwpush --version: %v", err)
		}
		return string(out)
	}
	// A version given with -ldflags -X main.version, as make build gives
	// it, is TestMakeInstall's: it builds fwpush that way and asks it.
	t.Run("from a git checkout", func(t *testing.T) {
		// Go records the commit only where .git is a directory, not in a
		// git worktree (.git is a file there).
		if fi, err := os.Stat("../../.git"); err != nil || !fi.IsDir() {
			t.Skip("not a git checkout with a .git directory")
		}
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatalf("git rev-parse HEAD: %v", err)
		}
		got := build(t, "-buildvcs=true")
		if !strings.Contains(got, string(head[:12])) {
			t.Errorf("got %q, want the commit %.12s in it", got, head)
		}
	})
}

func TestLimitUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--limit", "mysql-*,!mysq-2", exampleSite}, `fwpush: --limit mysql-*,!mysq-2: "!mysq-2" matches no host or role; did you mean "!mysql-2"?`},
		{[]string{"run", "--limit", "db,&app", exampleSite}, `fwpush: --limit db,&app: "db,&app" selects no host`},
		{[]string{"check", "--limit", "nope", exampleSite}, `fwpush: --limit nope: "nope" matches no host or role`},
		{[]string{"check", "--limit", "db[", exampleSite}, `fwpush: --limit db[: "db[": not a valid glob: syntax error in pattern`},
	}
	for _, tt := range tests {
		// Nothing is contacted: a test that dialled the example's tunnel
		// would wait for its timeout.
		code, out, errs := fwpush(t, tt.args...)
		if code != exitInvalid || out != "" || !strings.HasPrefix(errs, tt.want+"\n") {
			t.Errorf("fwpush %v: exit %d, stdout %q, stderr %q; want exit 3 and %q", tt.args, code, out, errs, tt.want)
		}
	}
}

func TestCheckLimitReport(t *testing.T) {
	inv, err := inventory.Load(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := selectHosts(inv, "mysql-*,!mysql-2")
	if err != nil {
		t.Fatal(err)
	}
	m := roles.ExpectFor(inv, hosts)
	obs := make([]runner.Observation, len(m.Expectations))
	for i, e := range m.Expectations {
		obs[i] = runner.Observation{Reach: e.Want}
	}
	rep := newCheckReport(inv, m, obs, time.Second)
	if rep.Count.Probes == 0 || rep.Count.Probes >= 71 {
		t.Fatalf("%d probes for mysql-1, want some of the example's 71", rep.Count.Probes)
	}
	for _, p := range rep.Probes {
		if p.From != "mysql-1" && p.To != "mysql-1" {
			t.Errorf("probe %s -> %s: neither end is mysql-1", p.From, p.To)
		}
	}
	var out bytes.Buffer
	rep.writeText(&out, style{}, true)
	if !strings.Contains(out.String(), "limited to the probes from or to 1 of 6 hosts") {
		t.Errorf("the report does not say it was limited:\n%s", out.String())
	}
}

// complete asks fwpush for completions as the shell scripts of `fwpush
// completion` do, and returns them and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	code, out, errs := fwpush(t, append([]string{"__complete"}, args...)...)
	if code != exitOK {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var names []string
	for _, l := range lines[:len(lines)-1] {
		names = append(names, strings.Split(l, "\t")[0]) // without the description
	}
	return names, lines[len(lines)-1]
}

func TestCompletion(t *testing.T) {
	const (
		noFile   = ":4"
		noSpace  = ":6" // and no file
		tomlFile = ":8"
		anyFile  = ":0"
		dirs     = ":16"
	)
	tests := []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"run", exampleSite, "--limit", ""}, []string{"app", "db", "lb", "tunnel", "haproxy-www", "mysql-1", "mysql-2", "tunnel-1", "wordpress-1", "wordpress-2"}, noSpace},
		{[]string{"run", exampleSite, "--limit", "my"}, []string{"mysql-1", "mysql-2"}, noSpace},
		{[]string{"run", exampleSite, "--limit", "mysql-*,!my"}, []string{"mysql-*,!mysql-1", "mysql-*,!mysql-2"}, noSpace},
		{[]string{"check", exampleSite, "--limit", "db,&w"}, []string{"db,&wordpress-1", "db,&wordpress-2"}, noSpace},
		{[]string{"check", exampleSite, "--limit", "db:t"}, []string{"db:tunnel", "db:tunnel-1"}, noSpace},
		{[]string{"run", exampleSite, "--limit", "mysql-1,mysql-"}, []string{"mysql-1,mysql-2"}, noSpace}, // each name once
		{[]string{"run", "--limit", ""}, nil, noFile},                                                     // no inventory yet
		{[]string{"render", exampleSite, "--host", "w"}, []string{"wordpress-1", "wordpress-2"}, noFile},
		{[]string{"validate", ""}, []string{"toml"}, tomlFile},
		{[]string{"run", "--dry-run", ""}, []string{"toml"}, tomlFile},
		{[]string{"run", exampleSite, ""}, nil, noFile},
		{[]string{"lab", "shell", exampleSite, "my"}, []string{"mysql-1", "mysql-2"}, noFile},
		{[]string{"lab", "probe", exampleSite, ""}, []string{"haproxy-www", "mysql-1", "mysql-2", "tunnel-1", "wordpress-1", "wordpress-2", "controller", "stranger"}, noFile},
		{[]string{"lab", "probe", exampleSite, "st"}, []string{"stranger"}, noFile},
		{[]string{"lab", "exec", exampleSite, "--", ""}, nil, anyFile},
		{[]string{"gen-man", ""}, nil, dirs},
		{[]string{"run", "../../examples/sites.toml", "--via", ""}, []string{"bastion-e1", "bastion-e2", "bastion-w1"}, noFile},
		{[]string{"check", exampleSite, "--via", ""}, []string{"tunnel-1"}, noFile},
		{[]string{"run", "../../examples/sites.toml", "--limit", "!w"}, []string{"!west", "!www-1"}, noSpace}, // sites too
	}
	for _, tt := range tests {
		got, directive := complete(t, tt.args...)
		if diff := cmp.Diff(tt.want, got); diff != "" || directive != tt.directive {
			t.Errorf("complete %q: directive %s (want %s), names (-want +got):\n%s", tt.args, directive, tt.directive, diff)
		}
	}

	code, out, _ := fwpush(t, "completion", "bash")
	if code != exitOK || !strings.Contains(out, "__start_fwpush") {
		t.Errorf("completion bash: exit %d, %d bytes", code, len(out))
	}
}

func TestVerbosity(t *testing.T) {
	tests := []struct {
		verbosity int
		want      []string
	}{
		{0, nil},
		{1, []string{"level=INFO msg=step", "level=WARN msg=warning"}},
		{2, []string{"level=DEBUG msg=command", "level=INFO msg=step", "level=WARN msg=warning"}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log := newLogger(tt.verbosity, &buf)
		log.Debug("command")
		log.Info("step")
		log.Warn("warning")
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l != "" {
				got = append(got, l[strings.Index(l, "level="):])
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("verbosity %d (-want +got):\n%s", tt.verbosity, diff)
		}
	}

	// -v counts: -vv and -v -v are debug.
	for args, want := range map[string]int{"": 0, "-v": 1, "-vv": 2, "-v -v": 2, "--verbose": 1} {
		var f connFlags
		cmd := &cobra.Command{}
		f.register(cmd)
		if err := cmd.ParseFlags(strings.Fields(args)); err != nil {
			t.Fatal(err)
		}
		if f.verbose != want {
			t.Errorf("%q: verbosity %d, want %d", args, f.verbose, want)
		}
		if want > 0 && !newLogger(f.verbose, &bytes.Buffer{}).Enabled(context.Background(), slog.LevelInfo) {
			t.Errorf("%q: info is not logged", args)
		}
	}
}

func TestRunCheckIsDeprecated(t *testing.T) {
	code, out, errs := fwpush(t, "run", "--check", "--json", "/nonexistent/site.toml")
	if code != exitInvalid || out != "" {
		t.Errorf("run --check --json of a missing file: exit %d, stdout %q (a deprecation note must stay off stdout)", code, out)
	}
	if !strings.HasPrefix(errs, "fwpush: run --check is deprecated: use run --dry-run --no-diff (fwpush check probes the network)\n") {
		t.Errorf("stderr %q lacks the deprecation note", errs)
	}
	if _, _, errs := fwpush(t, "run", "--dry-run", "--no-diff", "/nonexistent/site.toml"); strings.Contains(errs, "deprecated") {
		t.Errorf("the new spelling is called deprecated: %q", errs)
	}
	_, help, _ := fwpush(t, "run", "--help")
	if strings.Contains(help, "--check") || !strings.Contains(help, "--no-diff") || !strings.Contains(help, "--dry-run --no-diff --json") {
		t.Errorf("run --help shows --check, or not --no-diff and its example:\n%s", help)
	}
}

func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01
	if code, _, errs := fwpush(t, "gen-man", dir); code != exitOK {
		t.Fatalf("gen-man: exit %d: %s", code, errs)
	}
	for _, page := range []string{"fwpush.1", "fwpush-run.1", "fwpush-check.1", "fwpush-lab-up.1", "fwpush-version.1", "fwpush-history.1"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("no %s: %v", page, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fwpush-gen-man.1")); err == nil {
		t.Error("the hidden gen-man has a man page")
	}
	run, err := os.ReadFile(filepath.Join(dir, "fwpush-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(run), `\-`, "-") // roff escapes dashes
	for _, want := range []string{`.TH "FWPUSH-RUN" "1" "Jan 2026" "fwpush `, "fwpush-run", "--dry-run", "--no-diff", "--limit", "--quiet", "--json", "--verbose", "--identity", "rollback_after", "Exit status"} {
		if !strings.Contains(page, want) {
			t.Errorf("fwpush-run.1 lacks %q", want)
		}
	}
	if strings.Contains(page, "--check") {
		t.Error("fwpush-run.1 documents the deprecated --check")
	}
}

func TestCountsAreSingularForOne(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.toml")
	src := "[ssh]\ntunnel = \"t\"\n[hosts.t]\nrole = \"tunnel\"\npublic_ip = \"203.0.113.1\"\n[roles.tunnel]\ntemplate = \"tunnel\"\npublic_tcp = [22]\n"
	if err := os.WriteFile(one, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := fwpush(t, "validate", one); code != exitOK || !strings.Contains(out, ": valid: 1 host, 1 role") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	inv, err := inventory.Load(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	m := roles.Expect(inv)
	m.Expectations = m.Expectations[len(m.Expectations)-1:] // one probe between two hosts
	rep := newCheckReport(inv, roles.Matrix{Expectations: m.Expectations}, []runner.Observation{{Reach: m.Expectations[0].Want}}, time.Second)
	var out bytes.Buffer
	rep.writeText(&out, style{}, false)
	if got := out.String(); got != "check: 1 probe from 1 host and the controller in 1s: all as expected\n" {
		t.Errorf("check: %q", got)
	}

	// run's summary line.
	out.Reset()
	r := newReporter(&out, runFlags{})
	r.finish([]runner.HostResult{{Host: "mysql-1", Role: "db", Status: runner.Unchanged}}, time.Second)
	if !strings.Contains(out.String(), "\n1 host in 1s: 1 unchanged\n") {
		t.Errorf("run's summary:\n%s", out.String())
	}
}
