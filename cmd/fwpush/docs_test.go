package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/fwpush/fwpush/lab"
)

// The documentation's examples are run by TestDocs (those that contact
// nothing) and TestDocsInLab (those that need a fleet: a lab stands in).
// A fenced block is an example when it holds fwpush commands: either a
// transcript, whose prompts are "$ fwpush ..." or "# fwpush ..." (root's),
// followed by what the command prints, and "$ echo $?" by its exit status;
// or a list of commands, one "fwpush ..." a line, each of which must end
// well (0, or 2 for changes pending). A ```toml block must parse; a ```json
// one must be a document of docs/fwpush.schema.json.
//
// An HTML comment on the line before a block says more:
//
//	<!-- test: dir=PATH -->         commands run in a copy of PATH of the repository (default examples)
//	<!-- test: lab=INVENTORY -->    they need a lab of INVENTORY (in dir): TestDocsInLab
//	                                runs the page's blocks of that lab in order, on one lab
//	<!-- test: up="FLAGS" -->       with lab: the lab comes up with these flags of lab up
//	<!-- test: known-hosts=fresh -->with lab: fwpush on the controller starts from an empty known_hosts
//	<!-- test: on-hosts -->         with lab: each line runs as root in every host of the lab
//	<!-- test: root -->             the output holds what only root sees (iptables-restore run here)
//	<!-- test: file=PATH -->        the block is the file at PATH of the repository
//	<!-- test: part-of=PATH -->     its lines stand, in order, in the file at PATH
//	<!-- test: skip REASON -->      not run, for the reason given
//
// In what the commands print, durations, round trips, the HOME directory
// and a lab's name (the test's own, not the inventory's) read as the page
// writes them; runs of spaces are one; a line "..." stands for any lines. A lab's
// output is compared line by line in any order (hosts finish in any
// order): every line the page shows must be printed.

// docBlock is a fenced block of a page.
type docBlock struct {
	page string // README.md, docs/run.md
	line int    // of the opening fence
	lang string
	body string
	opts map[string]string
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.page, b.line) }

// docPages are the pages whose examples are tested, relative to the
// repository.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, p := range pages {
		out = append(out, strings.TrimPrefix(p, "../../"))
	}
	return out
}

var (
	fence   = regexp.MustCompile("^(```+|~~~+)\\s*([A-Za-z0-9_-]*)")
	comment = regexp.MustCompile(`^<!-- test:(.*)-->\s*$`)
	option  = regexp.MustCompile(`([a-z-]+)(?:=("[^"]*"|\S+))?`)
)

// docBlocks returns every fenced block of the documentation.
func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	var out []docBlock
	for _, page := range docPages(t) {
		f, err := os.ReadFile("../../" + page)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(f), "\n")
		var last string // the last line that is not blank
		for i := 0; i < len(lines); i++ {
			m := fence.FindStringSubmatch(lines[i])
			if m == nil {
				if strings.TrimSpace(lines[i]) != "" {
					last = lines[i]
				}
				continue
			}
			b := docBlock{page: page, line: i + 1, lang: m[2], opts: map[string]string{}}
			if c := comment.FindStringSubmatch(last); c != nil {
				text := strings.TrimSpace(c[1])
				if reason, ok := strings.CutPrefix(text, "skip"); ok {
					b.opts["skip"] = strings.TrimSpace(reason)
				} else {
					for _, o := range option.FindAllStringSubmatch(text, -1) {
						b.opts[o[1]] = strings.Trim(o[2], `"`)
					}
				}
			}
			var body []string
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], m[1]); i++ {
				body = append(body, lines[i])
			}
			b.body = strings.Join(body, "\n") + "\n"
			out = append(out, b)
			last = ""
		}
	}
	return out
}

// docStep is one command of an example and what the page says it prints
// (want, nil when it shows nothing) and exits with (code, -1 when unsaid).
type docStep struct {
	cmd    string
	want   []string
	code   int
	anyEnd bool // a list's command: 0 or 2
}

// prompt is a transcript's command line: fwpush, maybe after variables
// set for it ("$ FWPUSH_BECOME_PASS=s3cret fwpush run ...").
var prompt = regexp.MustCompile(`^[$#] ((?:[A-Z_]+=\S+ )*fwpush\b.*)$`)

// withoutVars is a command line without the variables set before it.
func withoutVars(cmd string) string {
	return regexp.MustCompile(`^(?:[A-Z_]+=\S+ )*`).ReplaceAllString(cmd, "")
}

// steps returns the commands of an example block, or nil if it holds none.
func (b docBlock) steps() []docStep {
	lines := strings.Split(strings.TrimSuffix(b.body, "\n"), "\n")
	var out []docStep
	transcript := slices.ContainsFunc(lines, prompt.MatchString)
	for _, l := range lines {
		switch {
		case transcript && prompt.MatchString(l):
			out = append(out, docStep{cmd: prompt.FindStringSubmatch(l)[1], code: -1})
		case transcript && (l == "$ echo $?" || l == "# echo $?"):
			out = append(out, docStep{cmd: "echo $?", code: -1})
		case transcript && len(out) > 0:
			s := &out[len(out)-1]
			if s.cmd == "echo $?" {
				if n, err := strconv.Atoi(strings.TrimSpace(l)); err == nil && len(out) > 1 {
					out[len(out)-2].code = n
					continue
				}
			}
			s.want = append(s.want, l)
		case !transcript && strings.HasPrefix(l, "fwpush "):
			out = append(out, docStep{cmd: l, code: -1, anyEnd: true})
		}
	}
	return slices.DeleteFunc(out, func(s docStep) bool { return s.cmd == "echo $?" })
}

// needsFleet reports whether a command contacts hosts (or a lab).
func needsFleet(cmd string) bool {
	f := strings.Fields(withoutVars(cmd))
	if len(f) < 2 || slices.Contains(f, "--help") || slices.Contains(f, "--list-hosts") {
		return false
	}
	switch f[1] {
	case "run", "check", "history", "lab", "plan", "apply":
		return true
	}
	return false
}

// changesMachine reports whether a command writes into the machine that
// runs it (schedule --install: systemd units, a crontab), which no test
// may do.
func changesMachine(cmd string) bool {
	f := strings.Fields(withoutVars(cmd))
	return slices.Contains(f, "--install")
}

// docEnv is how the examples run: fwpush (see cliPath), found on PATH as
// an operator's after make install, with no colours, no ssh-agent and
// HOME a directory of the test's.
type docEnv struct {
	bin, home string
	cliEnv    []string // what fwpush needs in its environment
}

func newDocEnv(t *testing.T) docEnv {
	t.Helper()
	path, env := cliPath(t)
	e := docEnv{bin: t.TempDir(), home: t.TempDir(), cliEnv: env}
	if err := os.Symlink(path, filepath.Join(e.bin, "fwpush")); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e docEnv) environ(more ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "SSH_AUTH_SOCK", "FWPUSH_IDENTITY", "FWPUSH_KNOWN_HOSTS", "FWPUSH_PARALLEL", "FWPUSH_TIMEOUT", "FWPUSH_ROLLBACK_AFTER", "FWPUSH_BECOME_PASS":
			continue
		}
		env = append(env, kv)
	}
	env = append(append(env, e.cliEnv...), "PATH="+e.bin+":"+os.Getenv("PATH"), "HOME="+e.home, "NO_COLOR=1")
	return append(env, more...)
}

// workDir returns a copy of dir (of the repository) in a directory of
// the test's, for its examples to run in: what they write (a plan, a
// report) stays out of the repository, and fwpush's lock on an inventory
// (see lockInventory) is not shared with the examples that run at once.
func workDir(t *testing.T, dir string) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), filepath.Base(dir))
	if err := os.CopyFS(work, os.DirFS(filepath.Join("../..", dir))); err != nil {
		t.Fatalf("copy %s: %v", dir, err)
	}
	return work
}

// run runs a command line with bash in dir (a copy made by workDir), its
// stderr and stdout as one, and returns what it printed and its status.
func (e docEnv) run(t *testing.T, dir, line string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "-c", line+" 2>&1")
	cmd.Dir = dir
	cmd.Env = e.environ(env...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("bash -c %q: %v", line, err)
	return "", 0
}

var (
	durations    = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?(ns|µs|us|ms|s|m)\b`)
	timestamps   = regexp.MustCompile(`\b[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)`)
	fingerprints = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}`)
	roundTrips   = regexp.MustCompile(`\bround_trips=[0-9]+\b`)
)

// normalize makes a line of output comparable: durations, times, host
// key fingerprints, -vv's round trips (a step's answers may come in more
// packets or fewer), HOME and the names given in replace read alike, runs
// of spaces are one.
func normalize(line, home string, replace ...string) string {
	line = strings.NewReplacer(append(replace, home, "~")...).Replace(line)
	line = timestamps.ReplaceAllString(line, "<time>")
	line = durations.ReplaceAllString(line, "<t>")
	line = fingerprints.ReplaceAllString(line, "SHA256:<key>")
	line = roundTrips.ReplaceAllString(line, "round_trips=<n>")
	return strings.Join(strings.Fields(line), " ")
}

// compareOutput compares what a command printed with what the page shows:
// in order, "..." standing for any lines; or, unordered, each shown line
// among those printed.
func compareOutput(got string, want []string, unordered bool, norm func(string) string) error {
	var g []string
	for l := range strings.Lines(got) {
		if n := norm(l); n != "" {
			g = append(g, n)
		}
	}
	var w []string
	for _, l := range want {
		if n := norm(l); n != "" {
			w = append(w, n)
		}
	}
	if unordered {
		if len(w) == 0 && len(g) > 0 {
			return fmt.Errorf("the page shows no output, the command printed:\n  %s", strings.Join(g, "\n  "))
		}
		var missing []string
		for _, l := range w {
			if l != "..." && !slices.Contains(g, l) {
				missing = append(missing, l)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("lines the page shows and the command did not print:\n  %s\nit printed:\n  %s", strings.Join(missing, "\n  "), strings.Join(g, "\n  "))
		}
		return nil
	}
	if !matchLines(g, w) {
		return fmt.Errorf("the page shows:\n  %s\nthe command printed:\n  %s", strings.Join(w, "\n  "), strings.Join(g, "\n  "))
	}
	return nil
}

// matchLines matches got against want, in which "..." stands for any
// number of lines.
func matchLines(got, want []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(got[i:], want[1:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && got[0] == want[0] && matchLines(got[1:], want[1:])
}

// checkStep runs one command of an example and checks what it printed
// and how it ended.
func checkStep(t *testing.T, b docBlock, s docStep, out string, code int, unordered bool, norm func(string) string) {
	t.Helper()
	switch {
	case s.anyEnd && code != exitOK && code != exitChanges:
		t.Errorf("%s: %s: exit %d:\n%s", b, s.cmd, code, out)
	case s.code >= 0 && code != s.code:
		t.Errorf("%s: %s: exit %d, the page says %d:\n%s", b, s.cmd, code, s.code, out)
	}
	if s.anyEnd {
		return
	}
	if err := compareOutput(out, s.want, unordered, norm); err != nil {
		t.Errorf("%s: %s: %v", b, s.cmd, err)
	}
}

// TestDocs runs the documentation's examples that contact nothing, and
// checks its TOML, JSON, its links and the README's length.
func TestDocs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the examples run in bash")
	}
	env := newDocEnv(t)
	root := lab.CheckRoot() == nil
	for _, b := range docBlocks(t) {
		t.Run(b.String(), func(t *testing.T) {
			t.Parallel()
			checkBlock(t, env, b, root)
		})
	}
}

// checkBlock checks one block of the documentation, running it if it is
// an example that contacts nothing.
func checkBlock(t *testing.T, env docEnv, b docBlock, root bool) {
	if reason, ok := b.opts["skip"]; ok {
		if reason == "" {
			t.Errorf("%s: skipped without a reason", b)
		}
		return
	}
	if f := b.opts["file"]; f != "" {
		if data, err := os.ReadFile("../../" + f); err != nil || string(data) != b.body {
			t.Errorf("%s: the block is not %s as it is (%v)", b, f, err)
		}
	}
	if f := b.opts["part-of"]; f != "" {
		if err := partOf(b.body, "../../"+f); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	switch b.lang {
	case "toml":
		var v map[string]any
		if _, err := toml.Decode(b.body, &v); err != nil {
			t.Errorf("%s: not TOML: %v", b, err)
		}
		return
	case "json":
		if json.Valid([]byte(b.body)) && strings.Contains(b.body, `"schema": "fwpush/v1"`) {
			if err := schemaErr(t, []byte(b.body)); err != nil {
				t.Errorf("%s: not a document of %s: %v", b, schemaFile, err)
			}
		}
		return
	}
	steps := b.steps()
	if len(steps) == 0 || b.opts["lab"] != "" {
		return
	}
	if _, ok := b.opts["root"]; ok && !root {
		t.Skip("what it prints holds what only root sees")
	}
	dir := workDir(t, cmp.Or(b.opts["dir"], "examples"))
	for _, s := range steps {
		if needsFleet(s.cmd) && s.code != exitInvalid { // invalid input contacts nothing
			t.Errorf("%s: %s contacts hosts: the block needs a lab (<!-- test: lab=INVENTORY -->) or a reason to skip it", b, s.cmd)
			continue
		}
		if changesMachine(s.cmd) {
			t.Errorf("%s: %s writes into this machine: the block needs a reason to skip it", b, s.cmd)
			continue
		}
		out, code := env.run(t, dir, s.cmd)
		checkStep(t, b, s, out, code, false, func(l string) string { return normalize(l, env.home) })
	}
}

// partOf checks that the lines of block that are not blank or comments
// stand in the file at path in the same order.
func partOf(block, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var file []string
	for l := range strings.Lines(string(data)) {
		file = append(file, strings.TrimSpace(l))
	}
	i := 0
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for i < len(file) && !sameLine(file[i], l) {
			i++
		}
		if i == len(file) {
			return fmt.Errorf("%q does not stand in %s (after the lines before it)", l, path)
		}
		i++
	}
	return nil
}

// sameLine compares two lines without their comments, spaces folded.
func sameLine(a, b string) bool {
	strip := func(s string) string {
		if i := strings.Index(s, " #"); i >= 0 {
			s = s[:i]
		}
		return strings.Join(strings.Fields(s), " ")
	}
	return strip(a) == strip(b)
}

// TestDocLinks: every relative link of the README and the docs names a
// file that exists, and an anchor, a heading of that page.
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range docPages(t) {
		data, err := os.ReadFile("../../" + page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(stripCode(string(data)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join("../..", filepath.Dir(page), file)
			if file == "" {
				path = "../../" + page
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
				continue
			}
			if anchor != "" && !slices.Contains(anchors(t, path), anchor) {
				t.Errorf("%s: link %s: no heading #%s in %s", page, target, anchor, file)
			}
		}
	}
}

// stripCode removes fenced blocks and code spans, where a link is text.
func stripCode(s string) string {
	return regexp.MustCompile("`[^`\n]*`").ReplaceAllString(stripFences(s), "")
}

// stripFences removes fenced blocks, where a line may start with "#".
func stripFences(s string) string {
	return regexp.MustCompile("(?s)```.*?```").ReplaceAllString(s, "")
}

// anchors returns the anchors GitHub makes of a page's headings.
func anchors(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.Lines(stripFences(string(data))) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestREADMEIsShort: the README is read in five minutes; the reference
// is in docs/.
func TestREADMEIsShort(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n > 300 {
		t.Errorf("README.md has %d lines, want at most 300: move reference to docs/", n)
	}
	for _, cmd := range []string{"make demo", "make test"} {
		if !bytes.Contains(data, []byte(cmd)) {
			t.Errorf("README.md does not say %s", cmd)
		}
	}
}
