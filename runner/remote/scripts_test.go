package remote

import (
	"strings"
	"testing"

	"github.com/fwpush/fwpush/internal/shellcheck"
)

// checked are the programs the hosts run, each with the shell that runs
// it: every step's script (and the guard it starts, and the command that
// wraps it), as composed of the files of scripts/.
func checked(read func(string) string) map[string]struct{ shell, text string } {
	s := compose(read)
	return map[string]struct{ shell, text string }{
		"facts":         {"sh", s.facts},
		"apply":         {"sh", s.apply},
		"guard":         {"sh", s.guard},
		"persist":       {"sh", s.persist},
		"confirm":       {"sh", s.confirm},
		"settle":        {"sh", s.settle},
		"probe":         {"sh", s.probe},
		"history":       {"sh", s.history},
		"probe.bash":    {"bash", read("probe.bash")},
		"wrap and skip": {"sh", s.wrap + s.skip},
		"nft facts":     {"sh", s.nftFacts},
		"nft apply":     {"sh", s.nftApply},
		"nft guard":     {"sh", s.nftGuard},
		"nft persist":   {"sh", s.nftPersist},
		"nft confirm":   {"sh", s.nftConfirm},
	}
}

// TestShellcheck: shellcheck finds nothing, not even a note of style, in
// any program the hosts run, as the files of scripts/ make it (with their
// comments, where its directives are); and sh, dash and bash parse them
// as the hosts get them.
func TestShellcheck(t *testing.T) {
	// Not in parallel, nor its subtests: the package's parallel tests
	// resume in the order of their files, this one late, and shellcheck,
	// seconds of a CPU per batch, then ran alone at the end of the
	// package's run. It runs before the parallel tests now, a batch per
	// CPU (see shellcheck.Check).
	var scripts []shellcheck.Script
	for name, p := range checked(whole) {
		scripts = append(scripts, shellcheck.Script{Name: name, Shell: p.shell, Text: p.text})
	}
	// The command that runs a script, as a login shell gets it (here the
	// script true: a script in quotes is one word to shellcheck).
	hows := []string{"as the login user", "sudo -n", "sudo -S"}
	for m, how := range hows {
		scripts = append(scripts, shellcheck.Script{Name: "the command " + how, Shell: "sh", Text: wrap("true", mode(m))})
		if mode(m) != sudoPassword {
			scripts = append(scripts, shellcheck.Script{Name: "the command " + how + ", with a deadline", Shell: "sh", Text: "d=5\n" + wrapWith(sent().wrapArg, "true", mode(m))})
		}
	}
	t.Run("shellcheck", func(t *testing.T) {
		shellcheck.Check(t, scripts...)
	})
	for name, p := range checked(code) {
		t.Run(name+" as sent", func(t *testing.T) {
			shellcheck.Parse(t, p.shell, p.text)
		})
	}
	for m, how := range hows {
		t.Run("the command "+how, func(t *testing.T) {
			shellcheck.Parse(t, "sh", wrap(sent().facts, mode(m)))
			if mode(m) != sudoPassword {
				shellcheck.Parse(t, "sh", "d=5\n"+wrapWith(sent().wrapArg, sent().facts, mode(m)))
			}
		})
	}
	// The command of a step with nothing on stdin does not read it.
	if strings.Contains(sent().wrapArg, "read") || !strings.Contains(sent().wrap, wrapRead) {
		t.Errorf("wrap.sh's read of the deadline is not where the commands expect it:\n%s", sent().wrap)
	}
}

// What the hosts get is the code: every comment line is left out, and
// nothing else.
func TestScriptsSentWithoutComments(t *testing.T) {
	for name, p := range checked(code) {
		for line := range strings.SplitSeq(p.text, "\n") {
			if strings.HasPrefix(line, "#") {
				t.Errorf("%s: a comment is sent: %s", name, line)
			}
		}
	}
	sent, all := checked(code)["confirm"].text, checked(whole)["confirm"].text
	for line := range strings.SplitSeq(all, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.Contains(sent, line) {
			t.Errorf("confirm: the line %q is not sent", line)
		}
	}
}
