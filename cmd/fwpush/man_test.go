package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPagesAsAPersonWrites: each page is titled after its command, and
// its flags read as --help shows them: no --timeout=0s, --verbose[=0] or
// --via=[], a default only where it says something.
func TestManPagesAsAPersonWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	if code, _, errs := fwpush(t, "gen-man", dir); code != exitOK {
		t.Fatalf("gen-man: exit %d: %s", code, errs)
	}
	read := func(page string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), `\-`, "-")
	}
	for page, title := range map[string]string{"fwpush.1": "FWPUSH", "fwpush-run.1": "FWPUSH-RUN", "fwpush-lab-up.1": "FWPUSH-LAB-UP", "fwpush-ssh-config.1": "FWPUSH-SSH-CONFIG"} {
		if !strings.Contains(read(page), "\n.TH \""+title+"\" \"1\" ") {
			t.Errorf("%s is not titled %s(1)", page, title)
		}
	}
	run, check := read("fwpush-run.1"), read("fwpush-check.1")
	for _, want := range []string{
		".TP\n\\fB--timeout\\fP \\fIduration\\fP\nbound of each SSH connection",
		".TP\n\\fB-v\\fP, \\fB--verbose\\fP \\fIcount\\fP\nlog what happens",
		".TP\n\\fB--via\\fP \\fIstrings\\fP\nreach a site",
		".TP\n\\fB--dry-run\\fP\nshow a diff",
		".TP\n\\fB-l\\fP, \\fB--limit\\fP \\fIstring\\fP\n",
	} {
		if !strings.Contains(run, want) {
			t.Errorf("fwpush-run.1 lacks %q", want)
		}
	}
	if !strings.Contains(check, "counts as filtered (default 2s)\n") {
		t.Errorf("fwpush-check.1 does not give --timeout's default of 2s")
	}
	for _, page := range []string{run, check, read("fwpush-lab-up.1")} {
		for _, bad := range []string{"=0s", "[=0]", "=[]", `=""`, "[=false]"} {
			if strings.Contains(page, bad) {
				t.Errorf("a man page writes a default as %q", bad)
			}
		}
	}
}
