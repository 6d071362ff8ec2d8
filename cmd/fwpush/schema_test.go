package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/fwpush/fwpush/check"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

const schemaFile = "../../docs/fwpush.schema.json"

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	f, err := os.Open(schemaFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("fwpush.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("fwpush.schema.json")
})

// schemaErr validates a --json document against docs/fwpush.schema.json.
func schemaErr(t *testing.T, data []byte) error {
	t.Helper()
	sch, err := compiled()
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// validateJSON fails the test unless data is a --json document of command
// that the documented schema accepts.
func validateJSON(t *testing.T, command string, data []byte) {
	t.Helper()
	if err := schemaErr(t, data); err != nil {
		t.Fatalf("%s --json does not match %s: %v\n%s", command, schemaFile, err, data)
	}
	var doc struct{ Schema, Command string }
	if err := json.Unmarshal(data, &doc); err != nil || doc.Command != command || doc.Schema != schemaVersion {
		t.Fatalf("%s --json: schema %q, command %q (%v)", command, doc.Schema, doc.Command, err)
	}
}

// TestRunJSONSchema: every status and field run can report, a local
// problem, and the check after the run, as the schema documents them.
func TestRunJSONSchema(t *testing.T) {
	var results []runner.HostResult
	for i, s := range runStatuses {
		r := runner.HostResult{Host: "h-" + strings.ReplaceAll(string(s), " ", "-"), Role: "db", Status: s, Backend: "nf_tables", Duration: time.Duration(i) * time.Millisecond}
		if i%2 == 1 {
			r.Backend = "nftables" // a host of the nftables backend
		}
		if !s.OK() {
			r.Stage, r.Err = "connect", errors.New("host h: connect: it went wrong")
		}
		if s != runner.Unchanged {
			r.Added, r.Diff = 1, "--- h live IPv4\n+++ h desired IPv4\n@@ -1 +1,2 @@\n+-A INPUT -j ACCEPT\n"
		}
		results = append(results, r)
	}
	verified := siteReport(t, func(e roles.Expectation) (runner.Observation, bool) {
		return runner.Observation{Err: errors.New("down")}, e.From == "mysql-2"
	})
	verified.LeftOut, verified.Count.LeftOut = []check.LeftOut{{Host: "wordpress-2", Status: "unreachable"}}, 12

	var out bytes.Buffer
	r := newReporter(&out, runFlags{asJSON: true})
	if err := r.writeJSON("site.toml", results, time.Second, errors.New("no SSH key"), verified, exitFailed); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "run", out.Bytes())
	var doc runReport
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Counts["drift_repaired"] != 1 || doc.Counts["not_tried"] != 1 || doc.Hosts[3].Status != "drift_repaired" || doc.Hosts[2].Diff == "" || doc.Error != "no SSH key" {
		t.Errorf("run --json: counts %v, hosts %+v, error %q", doc.Counts, doc.Hosts, doc.Error)
	}

	// --no-diff leaves every diff out.
	out.Reset()
	r = newReporter(&out, runFlags{asJSON: true, noDiff: true})
	if err := r.writeJSON("site.toml", results, time.Second, nil, nil, exitFailed); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "run", out.Bytes())
	if strings.Contains(out.String(), `"diff"`) {
		t.Errorf("run --json --no-diff carries a diff:\n%s", out.String())
	}
}

// TestSchemaRejects: the schema tells a wrong document from a right one
// (the old keys with spaces, a missing version, an unknown key).
func TestSchemaRejects(t *testing.T) {
	var out bytes.Buffer
	r := newReporter(&out, runFlags{asJSON: true})
	if err := r.writeJSON("site.toml", []runner.HostResult{{Host: "mysql-1", Role: "db", Status: runner.DriftRepaired}}, time.Second, nil, nil, exitOK); err != nil {
		t.Fatal(err)
	}
	good := out.String()
	if err := schemaErr(t, []byte(good)); err != nil {
		t.Fatalf("the good document: %v", err)
	}
	for name, bad := range map[string]string{
		"a status with a space": strings.Replace(good, `"status": "drift_repaired"`, `"status": "drift repaired"`, 1),
		"a count with a space":  strings.Replace(good, `"drift_repaired": 1`, `"drift repaired": 1`, 1),
		"no schema version":     strings.Replace(good, `"schema": "fwpush/v1",`, ``, 1),
		"an unknown key":        strings.Replace(good, `"dry_run": false,`, `"dry_run": false, "dryRun": false,`, 1),
	} {
		if bad == good {
			t.Fatalf("%s: the document did not change", name)
		}
		if schemaErr(t, []byte(bad)) == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
	}
}

// TestJSONDocExamples: every example in docs/json.md is valid.
func TestJSONDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		var d struct{ Command string }
		if err := json.Unmarshal(b[1], &d); err != nil {
			t.Fatalf("docs/json.md: an example is not JSON: %v\n%s", err, b[1])
		}
		if d.Command == "" { // a line of fwpush history --json: no document
			if err := schemaErr(t, b[1]); err != nil {
				t.Errorf("docs/json.md: a history line does not match %s: %v\n%s", schemaFile, err, b[1])
			}
			seen["history"] = true
			continue
		}
		validateJSON(t, d.Command, b[1])
		seen[d.Command] = true
	}
	if !seen["run"] || !seen["check"] || !seen["history"] {
		t.Errorf("docs/json.md has examples of %v, want run, check and history", seen)
	}
}
