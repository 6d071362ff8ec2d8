package main

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner"
	"github.com/fwpush/fwpush/runner/transport"
)

// openFleet prepares the one fleet a command works through. Each site is
// reached through the first of its bastions that answers (or the one
// --via names), when the command first needs it. A site reached through
// another bastion than its first, or through none, is news an operator
// must see even under cron: one line on stderr, before any host of the
// site is reported, says which bastion and why the others were skipped,
// or that the site is unreachable and its hosts not tried, and why (no
// bastion answers; or fwpush's own side, such as no usable key, when the
// cause is not the site's). A --via that names no
// bastion is invalid input.
func openFleet(inv *inventory.Inventory, opts transport.Options, becomePass string, via []string, stderr io.Writer) (*runner.SSHFleet, error) {
	var mu sync.Mutex
	var fleet *runner.SSHFleet
	fleet, err := runner.Open(inv, opts, runner.OpenOptions{
		BecomePass: becomePass,
		Via:        via,
		OnReach: func(r runner.Reach) {
			if len(r.Skipped) == 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if r.Via != "" {
				fmt.Fprintf(stderr, "fwpush: %s\n", oneLine(r.String()))
				return
			}
			// Not tried: fwpush's side, or every bastion of the site.
			why := fleet.Err(r.Site)
			site := ""
			if r.Site != "" {
				site = "site " + r.Site + ": "
			}
			var se *runner.SiteError
			if errors.As(why, &se) {
				site += "unreachable, "
				why = errors.New(se.Reason())
			}
			fmt.Fprintf(stderr, "fwpush: %sno host tried: %s\n", site, oneLine(why.Error()))
		},
	})
	if err != nil {
		return nil, &inputError{err}
	}
	return fleet, nil
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
