// Package shellcheck checks shell scripts in tests: with shellcheck,
// which must find nothing, not even a note of style, and with the shells
// that run them, which must parse them.
package shellcheck

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Check fails t on anything shellcheck finds in text, a script for shell
// ("sh" or "bash"). It skips t when shellcheck is not installed: make
// test installs it (scripts/deps.sh).
func Check(t testing.TB, shell, text string) {
	t.Helper()
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (make test installs it)")
	}
	cmd := exec.Command("shellcheck", "--shell="+shell, "--severity=style", "--norc", "-")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s\nthe script:\n%s", err, out, Numbered(text))
	}
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
