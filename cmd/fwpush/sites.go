package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
	"github.com/fwpush/fwpush/runner/transport"
)

// openFleet prepares the one fleet a command works through. Each site is
// reached through the first of its bastions that answers (or the one
// --via names), when the command first needs it; a site reached through
// another bastion than its first, or through none, is news an operator
// must see even under cron: one line on stderr says which bastion, and
// why the others were skipped. A --via that names no bastion is invalid
// input.
func openFleet(inv *inventory.Inventory, opts transport.Options, becomePass string, via []string, stderr io.Writer) (*runner.SSHFleet, error) {
	var mu sync.Mutex
	fleet, err := runner.Open(inv, opts, runner.OpenOptions{
		BecomePass: becomePass,
		Via:        via,
		OnReach: func(r runner.Reach) {
			if len(r.Skipped) == 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "fwpush: %s\n", r)
		},
	})
	if err != nil {
		return nil, &usageError{err}
	}
	return fleet, nil
}

// siteErrors are the report's error lines for the hosts of sites that
// could not be reached: one per site, naming its hosts, instead of one per
// host. It returns the lines and the hosts they cover; a bastion that
// failed otherwise (its host key, say) keeps a line of its own.
func siteErrors(results []runner.HostResult) (lines []string, covered map[string]bool) {
	covered = map[string]bool{}
	type group struct {
		err   *runner.SiteError
		hosts []string
	}
	var groups []*group
	for _, res := range results {
		var se *runner.SiteError
		if res.Status != runner.Unreachable || !errors.As(res.Err, &se) {
			continue
		}
		covered[res.Host] = true
		i := 0
		for i < len(groups) && groups[i].err.Site != se.Site {
			i++
		}
		if i == len(groups) {
			groups = append(groups, &group{err: se})
		}
		groups[i].hosts = append(groups[i].hosts, res.Host)
	}
	for _, g := range groups {
		what := "unreachable"
		if g.err.Site != "" {
			what = "site " + g.err.Site + " unreachable"
		}
		lines = append(lines, fmt.Sprintf("%s, %s: %s", what, hostNames(g.hosts), g.err.Reason()))
	}
	return lines, covered
}

// hostNames lists hosts in prose: "host a", "hosts a, b and c", "hosts a,
// b, c, d and 12 more".
func hostNames(hosts []string) string {
	const most = 5
	switch n := len(hosts); {
	case n == 1:
		return "host " + hosts[0]
	case n <= most:
		return "hosts " + strings.Join(hosts[:n-1], ", ") + " and " + hosts[n-1]
	default:
		return fmt.Sprintf("hosts %s and %d more", strings.Join(hosts[:most-1], ", "), n-most+1)
	}
}

// jsonSite is how --json reports a site that was reached: through which
// bastion, and why the ones before it were skipped.
type jsonSite struct {
	Site    string     `json:"site"`
	Via     string     `json:"via"` // "" when none answered
	Forced  bool       `json:"forced,omitempty"`
	Skipped []jsonSkip `json:"skipped,omitempty"`
}

type jsonSkip struct {
	Bastion string `json:"bastion"`
	Error   string `json:"error"`
}

func jsonSites(reached []runner.Reach) []jsonSite {
	out := []jsonSite{}
	for _, r := range reached {
		s := jsonSite{Site: r.Site, Via: r.Via, Forced: r.Forced}
		for _, sk := range r.Skipped {
			s.Skipped = append(s.Skipped, jsonSkip{Bastion: sk.Bastion, Error: sk.Err.Error()})
		}
		out = append(out, s)
	}
	return out
}
