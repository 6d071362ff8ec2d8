package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bashCompletion is bash-completion's library, which the script of fwpush
// completion bash needs.
const bashCompletion = "/usr/share/bash-completion/bash_completion"

// TestBashCompletesAfterAComma runs the script of fwpush completion bash
// in bash, as a TAB would: after a comma in --limit it completes the next
// term (cobra's own script escaped the comma, and matched nothing).
func TestBashCompletesAfterAComma(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	// fwpush, as the script calls it (see cliPath).
	bin := t.TempDir()
	fwpushPath, fwpushEnv := cliPath(t)
	if err := os.Symlink(fwpushPath, filepath.Join(bin, "fwpush")); err != nil {
		t.Fatal(err)
	}
	code, script, errs := fwpush(t, "completion", "bash")
	if code != exitOK {
		t.Fatalf("completion bash: exit %d: %s", code, errs)
	}
	lib := "source " + bashCompletion
	if _, err := os.Stat(bashCompletion); err != nil {
		// Without the package, the one function of it the script uses,
		// for the words below, which hold no quotes.
		lib = `_get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }`
	}
	tests := []struct {
		line string
		want []string
	}{
		{"fwpush run site.toml --limit my", []string{"mysql-1", "mysql-2"}},
		{"fwpush run site.toml --limit db,my", []string{"db,mysql-1", "db,mysql-2"}},
		{"fwpush check site.toml -l db,mysql-1,wordpress-", []string{"db,mysql-1,wordpress-1", "db,mysql-1,wordpress-2"}},
		{"fwpush run site.toml --limit db,mysql-1,wordpress-2", []string{"db,mysql-1,wordpress-2"}}, // one: inserted as is, no "\,"
	}
	for _, tt := range tests {
		words := strings.Fields(tt.line)
		sh := lib + "\n" + script + `
COMP_LINE=$1 COMP_POINT=${#1} COMP_TYPE=9
read -ra COMP_WORDS <<<"$1"
COMP_CWORD=$((${#COMP_WORDS[@]}-1))
__start_fwpush fwpush "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
`
		cmd := exec.Command(bash, "-c", sh, "bash", tt.line)
		cmd.Dir = "../../examples"
		cmd.Env = append(append(os.Environ(), fwpushEnv...), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: bash: %v", tt.line, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, strings.Fields(l)[0]) // without the description
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s<TAB> in bash (%d words) (-want +got):\n%s", tt.line, len(words), diff)
		}
	}
}
