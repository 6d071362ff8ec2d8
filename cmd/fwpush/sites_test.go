package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/runner"
)

const exampleSites = "../../examples/sites.toml"

// --json says how each site was reached: through which bastion, and why
// the ones before it were skipped.
func TestRunJSONSites(t *testing.T) {
	down := &runner.SiteError{Site: "west", Tried: []runner.Skip{{Bastion: "bastion-w1", Err: errors.New("host bastion-w1: connect to 203.0.113.30:22: no answer within 10s")}}}
	results := []runner.HostResult{
		{Host: "app-1", Role: "app", Status: runner.Applied},
		{Host: "db-1", Role: "db", Status: runner.NotTried, Stage: "connect", Err: &runner.HostError{Host: "db-1", Stage: "connect", Err: &runner.NotTriedError{Host: "db-1", Err: down}}},
	}
	var out bytes.Buffer
	r := newReporter(&out, runFlags{asJSON: true})
	r.sites = []runner.Reach{
		{Site: "east", Via: "bastion-e2", Skipped: []runner.Skip{{Bastion: "bastion-e1", Err: errors.New("host bastion-e1: connect to 203.0.113.10:22: no answer within 10s")}}},
		{Site: "west", Skipped: down.Tried},
	}
	r.finish(results, time.Second)
	if err := r.writeJSON("sites.toml", results, time.Second, nil, nil, exitFailed); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "run", out.Bytes())
	var rep runReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	want := []jsonSite{
		{Site: "east", Via: "bastion-e2", Skipped: []jsonSkip{{Bastion: "bastion-e1", Error: "host bastion-e1: connect to 203.0.113.10:22: no answer within 10s"}}},
		{Site: "west", Skipped: []jsonSkip{{Bastion: "bastion-w1", Error: "host bastion-w1: connect to 203.0.113.30:22: no answer within 10s"}}},
	}
	if diff := cmp.Diff(want, rep.Sites); diff != "" {
		t.Errorf("--json sites (-want +got):\n%s", diff)
	}
	if rep.Hosts[1].Status != "not_tried" || rep.Hosts[1].Error != "host db-1: not tried: site west: no bastion answers: host bastion-w1: connect to 203.0.113.30:22: no answer within 10s" {
		t.Errorf("db-1: %+v", rep.Hosts[1])
	}
}

// --via names a bastion; anything else is invalid input, and nothing is
// contacted.
func TestViaErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--via", "app-1", exampleSites}, "fwpush: --via app-1: not a bastion: the hosts of site east accept SSH from bastion-e1, bastion-e2 only\n"},
		{[]string{"check", "--via", "bastion-e1,bastion-e2", exampleSites}, "fwpush: --via bastion-e2: --via bastion-e1 already names the bastion of site east\n"},
		{[]string{"run", "--via", "nobody", exampleSite}, "fwpush: --via nobody: no such host\n"},
	} {
		code, out, errs := fwpush(t, tt.args...)
		if code != exitInvalid || out != "" || !strings.HasPrefix(errs, tt.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, out, errs, exitInvalid, tt.want)
		}
	}
}
