package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/runner"
)

const exampleSites = "../../examples/sites.toml"

// A site none of whose bastions answers is one line in run's report,
// naming the site and its hosts; a bastion that failed for a reason of its
// own (its host key) keeps its line; --json says how each site was reached.
func TestRunReportSiteDown(t *testing.T) {
	down := &runner.SiteError{Site: "west", Tried: []runner.Skip{{Bastion: "bastion-w1", Err: errors.New("host bastion-w1: connect to 203.0.113.30:22: no answer within 10s")}}}
	unreachable := func(host string, err error) runner.HostResult {
		return runner.HostResult{Host: host, Role: "db", Status: runner.Unreachable, Stage: "connect", Err: &runner.HostError{Host: host, Stage: "connect", Err: err}}
	}
	results := []runner.HostResult{
		{Host: "app-1", Role: "app", Status: runner.Applied},
		unreachable("bastion-w1", fmt.Errorf("%w (%w)", errors.New("host bastion-w1: connect to 203.0.113.30:22: no answer within 10s"), down)),
		unreachable("db-1", fmt.Errorf("host db-1: not tried: %w", down)),
		unreachable("db-2", fmt.Errorf("host db-2: not tried: %w", down)),
		{Host: "www-1", Role: "lb", Status: runner.Failed, Err: errors.New("host www-1: apply: iptables-restore: line 7 failed")},
	}
	var out bytes.Buffer
	r := newReporter(&out, runFlags{})
	err := r.finish(results, time.Second)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitFailed {
		t.Errorf("exit: %v, want %d", err, exitFailed)
	}
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "error: ") {
			lines = append(lines, l)
		}
	}
	want := []string{
		"error: host www-1: apply: iptables-restore: line 7 failed",
		"error: site west unreachable, hosts bastion-w1, db-1 and db-2: no bastion answers: host bastion-w1: connect to 203.0.113.30:22: no answer within 10s",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("error lines (-want +got):\n%s", diff)
	}

	out.Reset()
	r = newReporter(&out, runFlags{asJSON: true})
	r.sites = []runner.Reach{
		{Site: "east", Via: "bastion-e2", Skipped: []runner.Skip{{Bastion: "bastion-e1", Err: errors.New("host bastion-e1: connect to 203.0.113.10:22: no answer within 10s")}}},
		{Site: "west", Skipped: down.Tried},
	}
	_ = r.finish(results, time.Second)
	var rep struct {
		Sites []jsonSite `json:"sites"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	wantSites := []jsonSite{
		{Site: "east", Via: "bastion-e2", Skipped: []jsonSkip{{Bastion: "bastion-e1", Error: "host bastion-e1: connect to 203.0.113.10:22: no answer within 10s"}}},
		{Site: "west", Skipped: []jsonSkip{{Bastion: "bastion-w1", Error: "host bastion-w1: connect to 203.0.113.30:22: no answer within 10s"}}},
	}
	if diff := cmp.Diff(wantSites, rep.Sites); diff != "" {
		t.Errorf("--json sites (-want +got):\n%s", diff)
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
