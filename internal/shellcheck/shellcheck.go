// Package shellcheck checks shell scripts in tests: with shellcheck,
// which must find nothing, not even a note of style, and with the shells
// that run them, which must parse them.
package shellcheck

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Script is a shell script to check.
type Script struct {
	// Name names the script in what shellcheck finds: it is written to a
	// file of that name, so it must be a local path ("facts",
	// "lab/boot.sh").
	Name string
	// Shell is the shell that runs it: "sh" or "bash".
	Shell string
	Text  string
}

// Check fails t on anything shellcheck finds in scripts, not even a note
// of style. It runs a shellcheck for the scripts of a shell per CPU at
// most, at once, on files named after them, so that what it finds names
// them: a shellcheck per script, started at once from a test binary built
// with -race, took 40% more CPU time (runner/remote's TestShellcheck). It
// skips t when shellcheck is not installed: make test installs it
// (scripts/deps.sh).
func Check(t testing.TB, scripts ...Script) {
	t.Helper()
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (make test installs it)")
	}
	dir := t.TempDir()
	texts := map[string]string{}
	byShell := map[string][]string{}
	for _, s := range scripts {
		if s.Shell != "sh" && s.Shell != "bash" {
			t.Fatalf("%s: a script for %q?", s.Name, s.Shell)
		}
		if _, dup := texts[s.Name]; dup || !filepath.IsLocal(s.Name) {
			t.Fatalf("%q: not a name of its own for a file", s.Name)
		}
		texts[s.Name] = s.Text
		byShell[s.Shell] = append(byShell[s.Shell], s.Name)
		path := filepath.Join(dir, s.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(s.Text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type batch struct {
		shell string
		names []string
	}
	var batches []batch
	for _, shell := range slices.Sorted(maps.Keys(byShell)) {
		for _, names := range split(byShell[shell], texts, runtime.GOMAXPROCS(0)) {
			batches = append(batches, batch{shell, names})
		}
	}
	var wg sync.WaitGroup
	for _, b := range batches {
		wg.Go(func() {
			cmd := exec.Command("shellcheck", append([]string{"--shell=" + b.shell, "--severity=style", "--norc", "--"}, b.names...)...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err == nil {
				return
			}
			var found strings.Builder
			for _, name := range b.names {
				if bytes.Contains(out, []byte("In "+name+" line ")) {
					fmt.Fprintf(&found, "\n%s:\n%s", name, Numbered(texts[name]))
				}
			}
			t.Errorf("shellcheck --shell=%s: %v\n%s%s", b.shell, err, out, found.String())
		})
	}
	wg.Wait()
}

// split shares names out into at most n batches of about as many lines
// each, the longest first, each batch sorted: shellcheck takes seconds on
// runner/remote's scripts (thousands of lines), on one CPU, and a test
// binary's last test to end is often the one that runs it.
func split(names []string, texts map[string]string, n int) [][]string {
	names = slices.Clone(names)
	lines := func(name string) int { return strings.Count(texts[name], "\n") }
	slices.SortStableFunc(names, func(a, b string) int { return lines(b) - lines(a) })
	batches := make([][]string, min(n, len(names)))
	size := make([]int, len(batches))
	for _, name := range names {
		i := slices.Index(size, slices.Min(size))
		batches[i] = append(batches[i], name)
		size[i] += lines(name)
	}
	for _, b := range batches {
		slices.Sort(b)
	}
	return batches
}

// Parse fails t unless every shell that may run text parses it: sh and
// dash for a script for sh, bash for one for bash.
func Parse(t testing.TB, shell, text string) {
	t.Helper()
	shells := map[string][]string{"sh": {"sh", "dash"}, "bash": {"bash"}}[shell]
	if shells == nil {
		t.Fatalf("a script for %q?", shell)
	}
	parsedWith := map[string]bool{} // the shells' programs, sh often being dash
	for _, sh := range shells {
		path, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("no %s to parse with", sh)
			continue
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			if parsedWith[real] {
				continue
			}
			parsedWith[real] = true
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(text)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s -n: %v: %s\nthe script:\n%s", sh, err, stderr.String(), Numbered(text))
		}
	}
}

// Numbered is text with line numbers, as shellcheck counts them.
func Numbered(text string) string {
	var b strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}
