// Package planfile is the saved plan that fwpush plan writes and fwpush
// apply carries out: every host's change (package change) as a dry run
// decided it, each with the state of the host it was decided from, and
// what the plan was made from — the inventory (its path and digest), the
// options, fwpush's version and the time. What apply must refuse before it
// contacts anything is decided here (Check); what it must refuse per host
// (a host whose state changed since) is the runner's. Plain data and
// decisions: no I/O.
package planfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/roles"
)

// Schema is the version of a plan's shape, the same as the --json
// reports' (docs/json.md): within it keys may be added, never removed or
// changed in meaning.
const Schema = "fwpush/v1"

// Command is a plan's "command".
const Command = "plan"

// DefaultMaxAge is how old a plan apply takes by default.
const DefaultMaxAge = time.Hour

// Plan is a saved plan.
type Plan struct {
	Schema  string `json:"schema"`
	Command string `json:"command"`
	// Version is the version of fwpush that made it: apply takes a plan of
	// its own version only (another may compile or carry out otherwise).
	Version string `json:"fwpush_version"`
	// Created is when the plan was made: when its hosts were read.
	Created   time.Time `json:"created"`
	Inventory Inventory `json:"inventory"`
	Options   Options   `json:"options"`
	// Limit is the --limit the plan was made with, for the record: the
	// hosts are those of Hosts.
	Limit string `json:"limit,omitempty"`
	// Hosts are the change of every host the plan read, in the order of
	// the inventory's hosts.
	Hosts []*change.Change `json:"hosts"`
	// Counts are the hosts by action (change.None, change.Apply, ...).
	Counts map[string]int `json:"counts"`
	// ExitCode is the exit status of the plan: 0 nothing to do, 2 changes
	// pending.
	ExitCode int `json:"exit_code"`
}

// Inventory is what a plan records of its inventory.
type Inventory struct {
	// Path is the inventory file's absolute path, where apply reads it.
	Path string `json:"path"`
	// Digest is the compiled inventory's (see roles.Plan.Digest): apply
	// refuses a plan whose inventory compiles from anything else now.
	Digest string `json:"digest"`
}

// Options are the options a plan was made with, which its apply keeps.
type Options struct {
	// ForceOwn: the changes remove the chains no preserve pattern keeps,
	// and apply beside other firewall managers (run --force-own).
	ForceOwn bool `json:"force_own"`
	// StrictPreserve: a preserved chain that accepts every packet is
	// unknown, drift (run --strict-preserve).
	StrictPreserve bool `json:"strict_preserve"`
	// Sets: the policies match ipsets (roles.Options.Sets).
	Sets bool `json:"sets"`
}

// New makes the plan of changes, one per host in that order, made at
// created from the inventory at path, whose compiled digest is digest
// (roles.Plan.Digest), by fwpush version.
func New(digest, path string, changes []*change.Change, opts Options, limit, version string, created time.Time) *Plan {
	p := &Plan{
		Schema: Schema, Command: Command, Version: version, Created: created.UTC(),
		Inventory: Inventory{Path: path, Digest: digest},
		Options:   opts, Limit: limit, Hosts: changes, Counts: map[string]int{},
	}
	for _, a := range []change.Action{change.None, change.PersistOnly, change.Apply, change.RepairDrift, change.Refused} {
		p.Counts[string(a)] = 0
	}
	for _, c := range changes {
		p.Counts[string(c.Action)]++
	}
	if p.Pending() {
		p.ExitCode = 2
	}
	return p
}

// Pending reports whether the plan changes any host.
func (p *Plan) Pending() bool {
	return slices.ContainsFunc(p.Hosts, func(c *change.Change) bool { return c.Action != change.None })
}

// Changes are the plan's changes by host name.
func (p *Plan) Changes() map[string]*change.Change {
	out := make(map[string]*change.Change, len(p.Hosts))
	for _, c := range p.Hosts {
		out[c.Host] = c
	}
	return out
}

// Marshal writes the plan as indented JSON.
func (p *Plan) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Parse reads a saved plan, refusing anything that is not one of this
// schema, whole. Keys it does not know are left alone: a plan of another
// version of fwpush is refused by Check, naming the versions.
func Parse(data []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not a saved plan of fwpush: %w", err)
	}
	switch {
	case p.Command != Command:
		return nil, fmt.Errorf("not a saved plan of fwpush: its command is %q, not %q (a --json report?)", p.Command, Command)
	case p.Schema != Schema:
		return nil, fmt.Errorf("a plan of schema %q: this fwpush reads %s", p.Schema, Schema)
	case p.Inventory.Path == "" || !strings.HasPrefix(p.Inventory.Digest, "sha256:"):
		return nil, errors.New("the plan names no inventory, or no digest of it")
	case p.Created.IsZero():
		return nil, errors.New("the plan says not when it was made")
	}
	seen := map[string]bool{}
	for i, c := range p.Hosts {
		switch {
		case c == nil || c.Host == "":
			return nil, fmt.Errorf("the plan's host %d has no name", i)
		case seen[c.Host]:
			return nil, fmt.Errorf("the plan holds host %s twice", c.Host)
		case !strings.HasPrefix(c.State, "sha256:"):
			return nil, fmt.Errorf("the plan holds no state of host %s", c.Host)
		case (c.Action == change.Apply || c.Action == change.RepairDrift) && c.Apply == nil:
			return nil, fmt.Errorf("the plan's change of host %s (%s) has no documents", c.Host, c.Action)
		}
		seen[c.Host] = true
	}
	return &p, nil
}

// Refused is a plan that apply must not carry out at all: nothing is
// contacted.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return "the plan is refused: " + e.Reason }

// Check decides whether a plan may be applied at now by fwpush version,
// the inventory now compiling to compiled: the same version; no older than
// maxAge (nor made in the future, beyond a minute of clock skew); the
// inventory compiled from the same content and templates, so that every
// host's policy is still the one the plan holds. Its error is a *Refused.
func (p *Plan) Check(compiled *roles.Plan, now time.Time, maxAge time.Duration, version string) error {
	if p.Version != version {
		return &Refused{fmt.Sprintf("it was made by fwpush %s, and this is fwpush %s: make a new plan with this one", p.Version, version)}
	}
	age := now.Sub(p.Created)
	switch {
	case age > maxAge:
		return &Refused{fmt.Sprintf("it was made %s ago (%s), more than --max-age %s: the hosts may have changed since; make a new plan",
			age.Round(time.Second), p.Created.Local().Format(time.DateTime), maxAge)}
	case age < -time.Minute:
		return &Refused{fmt.Sprintf("it was made in the future (%s): a clock is wrong, here or where the plan was made", p.Created.Local().Format(time.DateTime))}
	}
	if d := compiled.Digest(); d != p.Inventory.Digest {
		return &Refused{fmt.Sprintf("the inventory %s has changed since the plan was made (its digest was %s, it is %s): review the change and make a new plan",
			p.Inventory.Path, short(p.Inventory.Digest), short(d))}
	}
	for _, c := range p.Hosts {
		pol, ok := compiled.Policy(c.Host)
		switch {
		case !ok:
			return &Refused{fmt.Sprintf("host %s of the plan is not compiled from the inventory %s", c.Host, p.Inventory.Path)}
		case change.Digest(pol) != c.Digest:
			return &Refused{fmt.Sprintf("host %s: its policy compiles to another one than the plan's: make a new plan", c.Host)}
		}
	}
	return nil
}

// short is a digest cut for messages: "sha256:1a2b3c4d5e6f".
func short(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
