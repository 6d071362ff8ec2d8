package main

import (
	"os"
	"strings"
	"testing"
)

func TestGraphCmd(t *testing.T) {
	code, out, errs := fwpush(t, "graph", "../../examples/site.toml")
	if code != exitOK {
		t.Fatalf("graph: exit %d: %s", code, errs)
	}
	golden, err := os.ReadFile("../../roles/testdata/site.dot")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(golden) {
		t.Errorf("graph prints something else than roles/testdata/site.dot:\n%s", out)
	}

	bad := t.TempDir() + "/bad.toml"
	if err := os.WriteFile(bad, []byte("[ssh]\ntunnel = \"t\"\n[hosts.t]\nrole = \"nope\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = fwpush(t, "graph", bad)
	if code != exitInvalid || out != "" || !strings.Contains(errs, "nope") {
		t.Errorf("graph of an invalid inventory: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, _ := fwpush(t, "graph"); code != exitInvalid {
		t.Errorf("graph without an inventory: exit %d, want %d", code, exitInvalid)
	}
}
