package runner

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osuser "os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fwpush/fwpush/change"
	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/transport"
)

// Status is the outcome of a run on one host.
type Status string

// The outcomes, as the summary table shows them.
const (
	Unchanged     Status = "unchanged"
	Pending       Status = "would change" // --dry-run and --check
	Applied       Status = "applied"
	DriftRepaired Status = "drift repaired"
	RolledBack    Status = "rolled back"
	Failed        Status = "failed"
	Unreachable   Status = "unreachable"
	// Skipped: the run was interrupted before it changed the host.
	Skipped Status = "skipped"
	// Unknown: the host went silent after the apply; its guard restores
	// the old rules by itself at the time the error gives.
	Unknown Status = "unknown"
)

// OK reports whether the status is a success.
func (s Status) OK() bool {
	return s == Unchanged || s == Pending || s == Applied || s == DriftRepaired
}

// HostResult is what happened on one host.
type HostResult struct {
	Host   string
	Role   string
	Status Status
	Stage  string // the step that failed, for failures
	// Backend is what holds the host's policy: nftables for a host of
	// that backend, else the backend its iptables uses, nf_tables or
	// legacy.
	Backend string
	// Added and Removed count the rules (IPv4 and IPv6) that the new
	// policy adds to and removes from the live one.
	Added, Removed int
	Persisted      bool // rules.v4 and rules.v6 hold this policy, and load at boot
	// Boot is what the host loads if it reboots now, as far as the run
	// can tell: of interest where it failed (BootEarlier: its rules from
	// before this run are still in place).
	Boot Boot
	Diff string // unified diff of live against desired rules
	// Sets are fwpush's sets on the host that differ from the policy's,
	// MembersAdded and MembersRemoved the members they gain and lose, and
	// SetsDiff their unified diff: a change of members alone (an app
	// server added to the fleet) is no rule added or removed.
	Sets                         []change.SetDiff
	MembersAdded, MembersRemoved int
	SetsDiff                     string
	// Unknown are the live chains that neither the policy declares nor a
	// preserve pattern keeps: drift, which only --force-own removes.
	Unknown []string
	// Warnings are what the run found wrong that it does not fix, one
	// sentence each: rules of preserved chains that let every packet in
	// (change.Change.Openings), and what else on the host decides packets
	// the policy accepts (change.Change.Warnings).
	Warnings []string
	Duration time.Duration
	Err      error
	// Change is what was decided for the host once it was read, in a
	// dry run (the documents a saved plan holds), or what was carried
	// out of a saved plan (see RunOptions.Planned); nil otherwise, and
	// when the host was not read.
	Change *change.Change
}

// Boot is what a host loads at boot: its persisted rules, if any, and if
// iptables-persistent is there to load them.
type Boot string

// What a host loads at boot.
const (
	// BootUnknown: the host was not read, or the run failed while it may
	// have been writing its rules files.
	BootUnknown Boot = ""
	// BootPolicy: this policy (the result is Persisted).
	BootPolicy Boot = "policy"
	// BootEarlier: rules persisted before this run, which it left alone.
	BootEarlier Boot = "earlier"
	// BootNone: no rules: no rules files, or nothing installed to load them.
	BootNone Boot = "none"
)

// HostError is a failure on one host. errors.As finds the
// *transport.RemoteError (exit status, remote stderr) or
// *transport.HostKeyError beneath it.
type HostError struct {
	Host  string
	Stage string
	Err   error
}

func (e *HostError) Error() string {
	// The SSH layer names the host too; say it once.
	return "host " + e.Host + ": " + strings.ReplaceAll(e.Err.Error(), "host "+e.Host+": ", "")
}

func (e *HostError) Unwrap() error { return e.Err }

// RunOptions shape a run.
type RunOptions struct {
	// DryRun reads the live state and computes diffs, and changes nothing.
	DryRun bool
	// ForceOwn lets a run remove the chains no preserve pattern keeps, and
	// apply where another firewall manager is enabled: the operator takes
	// the filter table over.
	ForceOwn bool
	// StrictPreserve keeps no preserved chain that accepts every packet
	// from a built-in chain (see change.Options): such a chain is drift.
	StrictPreserve bool
	// Parallel is the most hosts worked on at once; 0 means the inventory's.
	Parallel int
	// RollbackAfter is the guard's delay; 0 means the inventory's.
	RollbackAfter time.Duration
	// Poll is how often a host whose fresh connection failed is tried
	// again until its guard's deadline; 0 means 100ms.
	Poll time.Duration
	// Who runs fwpush, as another run is told while this one holds a
	// host ("user@laptop pid 42"); "" means this process, as Who says.
	Who string
	// History is what the line each changed host appends to its history
	// says of the run (see history.Entry): who ran it ("" means User()),
	// fwpush's version, the fleet's digest, the hosts that joined and
	// left. Every change is recorded; a host left unchanged records
	// nothing.
	History history.Run
	// Logger receives per-host progress; nil discards it.
	Logger *slog.Logger
	// OnStart and OnDone, when set, are called as each host starts and
	// ends (from several goroutines at once).
	OnStart func(host string)
	OnDone  func(HostResult)
	// Planned, when set, are the changes of a saved plan, by host: each
	// host is read and settled as in any run, and then, rather than
	// decided anew, its planned change is made, but only while the host
	// is in the state the plan was made on (change.State); otherwise the
	// host is left untouched, Stale. Every host run must have one.
	Planned map[string]*change.Change
	// OnStep, when set, is called as a host begins a step: StepConnect,
	// StepRead, StepApply, StepConfirm or StepPersist (from several
	// goroutines at once).
	OnStep func(host, step string)
}

// The steps a host goes through, as RunOptions.OnStep names them.
const (
	StepConnect = "connect"
	StepRead    = "read"
	StepApply   = "apply"
	StepConfirm = "confirm"
	StepPersist = "persist"
)

// Run pushes the plan's policies to hosts (a subset of the plan's, in any
// order), in parallel, and returns one result per host in the same order.
// One host's failure never stops the others. In each site the bastions are
// changed last, one at a time, and the one carrying the site's connections
// (see Fleet.Tunnel) after all the others, since every other host of the
// site is reached through it. Sites are worked on at once, within one
// budget of opts.Parallel hosts.
//
// Cancelling ctx interrupts the run (SIGINT, say): no host starts after
// that, and a host not yet applied stops where it is (Skipped: nothing
// changed). A host whose apply has started finishes: its confirm, or its
// rollback, and its report says which, as the host tells it.
func Run(ctx context.Context, plan *roles.Plan, hosts []*inventory.Host, fleet Fleet, opts RunOptions) []HostResult {
	inv := plan.Inventory
	if opts.Parallel <= 0 {
		opts.Parallel = inv.SSH.Parallel
	}
	if opts.RollbackAfter <= 0 {
		opts.RollbackAfter = inv.SSH.RollbackAfter
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Who == "" {
		opts.Who = Who()
	}
	if opts.History.Who == "" {
		opts.History.Who = User()
	}
	results := make([]HostResult, len(hosts))
	pusherOf := func(i int) *pusher {
		h := hosts[i]
		pol, _ := plan.Policy(h.Name)
		return &pusher{inv: inv, host: h, pol: pol, fleet: fleet, opts: opts, log: opts.Logger.With("host", h.Name)}
	}
	one := func(i int) {
		h := hosts[i]
		if ctx.Err() != nil {
			results[i] = HostResult{Host: h.Name, Role: h.Role, Status: Skipped,
				Err: &HostError{Host: h.Name, Err: errors.New("not started: the run was interrupted")}}
			if opts.OnDone != nil {
				opts.OnDone(results[i])
			}
			return
		}
		if opts.OnStart != nil {
			opts.OnStart(h.Name)
		}
		results[i] = pusherOf(i).push(ctx)
		if opts.OnDone != nil {
			opts.OnDone(results[i])
		}
	}
	// early reads bastion i while the other hosts of its site are at
	// work, and reports whether that settled it: a bastion that has
	// nothing to change (or, in a dry run, that is only read) needs no
	// turn of its own after them, and the last step of an unchanged run
	// (the cron case) is no longer the tunnel's read. A bastion that
	// must change, or has another run's apply to settle, is read again
	// in its turn, and what it changes is decided on what it has then, as
	// for any host: the others' work may take minutes. Its connection is
	// closed meanwhile, so that no more than Parallel hosts are connected
	// to at once.
	early := func(i int) bool {
		if ctx.Err() != nil {
			return false
		}
		p := pusherOf(i)
		p.early = true
		res := p.push(ctx)
		if !p.settled {
			return false
		}
		results[i] = res
		if opts.OnStart != nil {
			opts.OnStart(hosts[i].Name)
		}
		if opts.OnDone != nil {
			opts.OnDone(results[i])
		}
		return true
	}
	// Every site's hosts but its bastions first, all sites at once; then
	// in each site, once those are done, its bastions one at a time, in
	// the inventory's order of preference but the one carrying the site's
	// connections last: that one changes only once every other bastion,
	// any of which could take over, is confirmed. One budget of Parallel
	// hosts covers every site.
	sem := make(chan struct{}, opts.Parallel)
	sites := map[string]*siteRun{}
	var order []string
	for i, h := range hosts {
		sr := sites[h.Site]
		if sr == nil {
			sr = &siteRun{}
			sites[h.Site] = sr
			order = append(order, h.Site)
		}
		if inv.IsBastion(h) {
			sr.bastions = append(sr.bastions, i)
		} else {
			sr.others.Add(1)
			sr.count++
		}
	}
	var all sync.WaitGroup
	for _, site := range order {
		sr := sites[site]
		if len(sr.bastions) == 0 {
			continue
		}
		all.Add(1)
		go func() {
			defer all.Done()
			// Read early only where there are others to overlap with, and
			// not for a saved plan, whose hosts are read once each.
			var later []int
			if sr.count > 0 && opts.Planned == nil {
				var reads sync.WaitGroup
				settled := make([]bool, len(sr.bastions))
				for k, i := range sr.bastions {
					reads.Go(func() {
						sem <- struct{}{}
						defer func() { <-sem }()
						settled[k] = early(i)
					})
				}
				reads.Wait()
				for k, i := range sr.bastions {
					if !settled[k] {
						later = append(later, i)
					}
				}
			} else {
				later = sr.bastions
			}
			sr.others.Wait()
			rank := bastionRank(inv, site, fleet.Tunnel(ctx, site))
			slices.SortStableFunc(later, func(a, b int) int { return cmp.Compare(rank(hosts[a]), rank(hosts[b])) })
			for _, i := range later {
				sem <- struct{}{}
				one(i)
				<-sem
			}
		}()
	}
	for i, h := range hosts {
		if inv.IsBastion(h) {
			continue
		}
		sem <- struct{}{}
		all.Add(1)
		go func() {
			defer all.Done()
			defer func() { <-sem }()
			one(i)
			sites[h.Site].others.Done()
		}()
	}
	all.Wait() // each host's error is in its result: none stops another
	return results
}

// siteRun is a site's part of a run: the hosts that are not bastions,
// under way, and the bastions, by their index in the run's hosts.
type siteRun struct {
	others   sync.WaitGroup
	count    int // the hosts others waits for
	bastions []int
}

// bastionRank orders a site's bastions for a run: by the inventory's
// preference, but carrier, which carries the site's connections, last.
func bastionRank(inv *inventory.Inventory, site, carrier string) func(*inventory.Host) int {
	s, _ := inv.Site(site)
	return func(h *inventory.Host) int {
		if h.Name == carrier {
			return len(s.Tunnels)
		}
		return slices.Index(s.Tunnels, h.Name)
	}
}

type pusher struct {
	inv   *inventory.Inventory
	host  *inventory.Host
	pol   *roles.Policy
	fleet Fleet
	opts  RunOptions
	log   *slog.Logger
	// changing is set once the host is being written to: from then on an
	// interruption waits for the host to settle.
	changing bool
	// writing is set once the rules files may be written: a failure from
	// then on leaves what the host loads at boot unknown.
	writing bool
	// early: the host is a bastion read while the other hosts of its
	// site are at work (see Run); the read changes nothing, and settled
	// says whether it was all the host needed.
	early, settled bool
}

// stageError is a failure at one step of a host's run.
type stageError struct {
	status Status
	stage  string
	err    error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func fail(stage string, err error) *stageError { return &stageError{Failed, stage, err} }

// connectError classifies a failed connection: a host whose key is unknown
// or changed answered, and failed the check; any other host is unreachable.
func connectError(err error) *stageError {
	var hke *transport.HostKeyError
	var nt *NotTriedError
	if errors.As(err, &nt) {
		return &stageError{NotTried, "connect", err}
	}
	if errors.As(err, &hke) {
		return fail("connect (host key)", err)
	}
	return &stageError{Unreachable, "connect", err}
}

// fail records a host's failure: the status and step of the stageError it
// wraps (Failed, with no step, for any other error), and the error itself.
func (res *HostResult) fail(err error) {
	res.Status, res.Stage = Failed, ""
	var se *stageError
	if errors.As(err, &se) {
		res.Status, res.Stage = se.status, se.stage
	}
	res.Err = &HostError{Host: res.Host, Stage: res.Stage, Err: err}
}

func (p *pusher) push(ctx context.Context) HostResult {
	start := time.Now()
	res := HostResult{Host: p.host.Name, Role: p.host.Role}
	err := p.run(ctx, &res)
	res.Duration = time.Since(start)
	if p.early {
		// What the early read could not settle waits for the host's
		// turn, which says how it went.
		p.settled = err == nil
		return res
	}
	if err != nil && ctx.Err() != nil && !p.changing {
		// Interrupted before anything changed: what failed is only the
		// echo of the interruption.
		res.Status, res.Stage, res.Err = Skipped, "", &HostError{Host: p.host.Name, Err: errors.New("interrupted before it was changed")}
		return res
	}
	if err != nil {
		res.fail(err)
		// A rollback, or an apply that failed, restores the rules alone,
		// with nothing written.
		if p.writing && res.Status != RolledBack && res.Stage != "apply" {
			res.Boot = BootUnknown
		}
		p.log.Warn("host failed", "status", res.Status, "err", err)
	}
	return res
}

// stepFail is a failure of a step of the host protocol: the step it names,
// else step.
func stepFail(step string, err error) *stageError {
	var se *remote.StepError
	if errors.As(err, &se) {
		return fail(se.Step, stepDetail{se})
	}
	return fail(step, err)
}

// stepDetail is a step's error as a stageError holds it: the stage names
// the step already.
type stepDetail struct{ *remote.StepError }

func (d stepDetail) Error() string { return d.Detail() }
func (d stepDetail) Unwrap() error { return d.StepError }

// run takes one host through its steps: open, read, settle, decide, then
// carry the decision out. An unchanged host costs its connection and one
// command (the read); a host whose rules change costs the read, one
// command that stages, tests, arms the guard and applies, the proof that
// new SSH connections still get in (a knock: see confirm) and one command
// that confirms and persists.
func (p *pusher) run(ctx context.Context, res *HostResult) error {
	p.step(StepConnect)
	h, err := p.fleet.Open(ctx, p.host)
	if err != nil {
		return connectError(err)
	}
	defer func() { h.Close() }()

	p.step(StepRead)
	f, err := h.Facts(ctx)
	if err != nil && p.early {
		return errLater
	}
	if err != nil {
		switch again, lost := p.readAgain(ctx, err); {
		case again:
			p.log.Warn("the way to the host was lost during the read; reading again through the site's bastion", "err", err)
			h2, err2 := p.fleet.Open(ctx, p.host)
			if err2 != nil {
				return connectError(err2)
			}
			h.Close()
			h = h2
			f, err = h.Facts(ctx)
		case lost != nil:
			err = fmt.Errorf("%w (%w)", lost, err)
		}
	}
	if err != nil {
		return stepFail("read live rules", err)
	}
	if p.early && !p.opts.DryRun && len(f.Guards) > 0 {
		return errLater // another run's apply to settle: in its turn
	}
	settled := false
	if !p.opts.DryRun {
		if f, settled, err = p.settle(ctx, h, f); err != nil {
			return err
		}
	}
	res.Backend = f.Backend
	if p.host.Backend == inventory.NFTables {
		res.Backend = "nftables"
	}
	res.Boot = bootOf(f, p.pol)

	c := change.Decide(p.inv, p.pol, f, change.Options{ForceOwn: p.opts.ForceOwn, StrictPreserve: p.opts.StrictPreserve})
	if p.early && !p.opts.DryRun && c.Action != change.None {
		return errLater // a change: in its turn, read again
	}
	res.Warnings = c.Openings
	if p.opts.Planned != nil {
		if c, err = p.planned(c, settled); err != nil {
			return err
		}
	}
	if p.opts.DryRun || p.opts.Planned != nil {
		// A plan keeps it; a run of a large fleet need not hold every
		// host's documents to its end.
		res.Change = &c
	}
	for _, note := range c.Forced {
		p.log.Warn(note)
	}
	res.Warnings = slices.Concat(res.Warnings, c.Warnings)
	for _, w := range c.Warnings {
		p.log.Warn(w)
	}
	if c.Action == change.Refused {
		return refused(c.Refusal)
	}
	res.Unknown, res.Added, res.Removed, res.Diff, res.Persisted = c.Unknown, c.Added, c.Removed, c.Diff, c.Persisted
	res.Sets, res.MembersAdded, res.MembersRemoved, res.SetsDiff = c.Sets, c.MembersAdded, c.MembersRemoved, c.SetsDiff
	if c.Action == change.None {
		res.Status = Unchanged
		return nil
	}
	// A dry run shows the change, even one that a run would refuse for
	// the chains it would remove: the diff names them.
	if p.opts.DryRun {
		res.Status = Pending
		return nil
	}
	if c.Refusal != nil {
		return refused(c.Refusal)
	}
	if err := ctx.Err(); err != nil {
		return err // interrupted: change nothing more
	}
	return p.carry(ctx, h, c, res)
}

// errLater ends the early read of a bastion that must wait its turn.
var errLater = errors.New("a change, in the bastion's turn")

// refused is a host the decision refuses, at the stage it names.
func refused(r *change.Refusal) *stageError { return fail(r.Stage, r) }

// carry makes the change c on the host, over h: it persists only, or it
// applies under the guard and, once a new connection has got in, confirms.
func (p *pusher) carry(ctx context.Context, h Host, c change.Change, res *HostResult) error {
	// From here on, the host finishes what it starts (each step is bounded
	// by its deadline): an interrupted run must not leave it half-way.
	p.changing = true
	ctx = context.WithoutCancel(ctx)
	persist := persistOf(c)
	// What the host's history says of the change, once it knows how it
	// ended: the confirm, or the persist, appends it.
	persist.History = p.opts.History.Entry(p.host.Name, c.Digest, c.Added, c.Removed).Body()
	persist.Done = history.Applied
	if c.Action == change.RepairDrift {
		persist.Done = history.DriftRepaired
	}
	res.Status = Applied
	if c.Action == change.PersistOnly {
		p.step(StepPersist)
		p.writing = true
		if err := h.Persist(ctx, persist); err != nil {
			return stepFail("persist", err)
		}
		res.Persisted, res.Boot = true, BootPolicy
		return nil
	}
	if c.Action == change.RepairDrift {
		res.Status = DriftRepaired
	}
	token, err := newToken()
	if err != nil {
		return fail("apply", err)
	}
	timeout, rollback := p.inv.SSH.Timeout, remote.RollbackSeconds(p.opts.RollbackAfter)
	var armed remote.GuardTimes
	apply := remote.Apply{Token: token, RollbackAfter: p.opts.RollbackAfter,
		V4: []byte(c.Apply.V4), V6: []byte(c.Apply.V6), Sets: setsOf(c.Apply.Sets),
		InstallNFT: c.Apply.InstallNFT, InstallIPSet: c.Apply.InstallIPSet,
		// The lock outlasts the guard and the confirm (with apt), should
		// this run die without either releasing it; another run holds it
		// no longer than its guard and confirm.
		Lease:    2*rollback + 3*timeout + persist.InstallTime() + installTime(c.Apply),
		LockWait: rollback + 2*timeout,
		Who:      p.opts.Who,
		Armed:    func(g remote.GuardTimes) { armed = g },
		// The host keeps the line for a run that settles this one.
		History: persist.History, Done: persist.Done,
	}
	if c.Apply.NFT != "" {
		apply.NFT = []byte(c.Apply.NFT)
	}
	p.step(StepApply)
	start := time.Now()
	if err := h.Apply(ctx, apply); err != nil {
		var se *remote.StepError
		if errors.As(err, &se) && se.NothingChanged {
			return stepFail("apply", err)
		}
		// The guard may be armed and the rules applied (a policy that
		// cuts SSH cuts the apply's answer too): the host knows.
		p.log.Warn("the apply's answer was lost; asking the host", "err", err)
	}
	// The guard was armed while Apply ran: it fires before this, and when
	// exactly, the host said, if its answer came.
	deadline := guess(start, rollback)
	deadline.told(armed)
	p.log.Info("applied under guard", "rollback_after", remote.RollbackSeconds(p.opts.RollbackAfter))
	p.step(StepConfirm)
	p.writing = true // the confirm persists
	if err := p.confirm(ctx, h, token, deadline, persist); err != nil {
		return err
	}
	res.Persisted, res.Boot = true, BootPolicy
	return nil
}

// installTime is how long the apply of d may take beyond the usual: apt's
// time when it installs a package first.
func installTime(d *change.Documents) time.Duration {
	if d.InstallNFT || d.InstallIPSet {
		return remote.InstallTimeout
	}
	return 0
}

// setsOf is what the host protocol loads of the set documents d: nothing
// for none.
func setsOf(d *change.SetDocs) remote.Sets {
	if d == nil {
		return remote.Sets{}
	}
	return remote.Sets{Stage: []byte(d.Stage), Swap: []byte(d.Swap), Clean: []byte(d.Clean), Drop: []byte(d.Drop)}
}

// persistOf is what the host protocol writes for c: a nil document keeps
// that file.
func persistOf(c change.Change) remote.Persist {
	p := remote.Persist{Install: c.Persist.Install, InstallSets: c.Persist.InstallSets}
	if c.Persist.V4 != "" {
		p.V4 = []byte(c.Persist.V4)
	}
	if c.Persist.V6 != "" {
		p.V6 = []byte(c.Persist.V6)
	}
	if c.Persist.Sets != "" {
		p.Sets = []byte(c.Persist.Sets)
	}
	if c.Persist.SetsFirst != "" {
		p.SetsFirst = []byte(c.Persist.SetsFirst)
	}
	if c.Persist.Record {
		p.Digest = c.Digest + "\n"
	}
	if c.Persist.NFT != "" {
		p.NFT = []byte(c.Persist.NFT)
	}
	p.Boot, p.RemoveNFT, p.RemoveIPT, p.RemoveSets = c.Persist.Boot, c.Persist.RemoveNFT, c.Persist.RemoveIPT, c.Persist.RemoveSets
	if c.Persist.DropSets != "" {
		p.DropSets = []byte(c.Persist.DropSets)
	}
	return p
}

// bootOf is what a host whose facts are f loads at boot: pol, once
// persisted (its rules, and its sets loaded before them); rules persisted
// before; or nothing.
func bootOf(f remote.Facts, pol *roles.Policy) Boot {
	if pol.Host.Backend == inventory.NFTables {
		switch n := f.NFT; {
		case n == nil || !n.Boot || n.Persisted == "":
			return BootNone // nothing of fwpush's loads at boot
		case n.Persisted == string(pol.NFTDocument().Text):
			return BootPolicy
		}
		return BootEarlier
	}
	setsBoot := len(pol.Sets) == 0 || f.PersistentSets && change.SetsFile(f.PersistedSets, pol) == f.PersistedSets
	switch {
	case !f.Persistent:
		return BootNone // nothing loads the rules files
	case f.Persisted4 == string(pol.V4) && f.Persisted6 == string(pol.V6) && setsBoot:
		return BootPolicy
	case f.Persisted4 != "" || f.Persisted6 != "":
		return BootEarlier
	}
	return BootNone
}

// step reports that the host begins a step.
func (p *pusher) step(name string) {
	if p.opts.OnStep != nil && !p.early {
		p.opts.OnStep(p.host.Name, name)
	}
}

// settle deals with the applies of other runs that the host has not
// decided yet, before this run decides anything: no guard outlives the
// run that finds it. An apply whose run is gone (it finished long ago and
// nobody confirmed it: that fwpush was killed) is kept when its rules are
// the ones this run would apply, and rolled back now otherwise; then the
// host is read again. A run still at work is waited for, as long as its
// guard and a confirm can take, and the host fails if it is still at work
// then. It returns the facts to decide on, and whether it settled an
// apply (which changes the host, or at least its guards).
func (p *pusher) settle(ctx context.Context, h Host, f remote.Facts) (remote.Facts, bool, error) {
	timeout := p.inv.SSH.Timeout
	var waited time.Duration
	for settled := 0; settled < 10; {
		if len(f.Guards) == 0 {
			return f, settled > 0, nil
		}
		g := f.Guards[0]
		if !gone(g, timeout) {
			if waited > max(g.FireAt.Sub(g.Now), timeout)+2*timeout {
				who := "another run of fwpush"
				if f.Lock != nil && f.Lock.Token == g.Token && f.Lock.Who != "" {
					who += " (" + f.Lock.Who + ")"
				}
				return f, settled > 0, fail("lock", fmt.Errorf("%s is changing this host: its guard restores the old rules at %s unless it confirms",
					who, g.FireAt.Local().Format("15:04:05")))
			}
			p.log.Info("waiting for another run of fwpush on this host", "its_guard_fires", g.FireAt)
			if err := sleep(ctx, 5*p.opts.Poll); err != nil {
				return f, settled > 0, err
			}
			waited += 5 * p.opts.Poll
		} else {
			keep := change.Keep(p.inv, p.pol, f, g)
			p.changing = true // settling writes to the host
			out, err := h.Settle(context.WithoutCancel(ctx), g.Token, keep)
			if err != nil {
				return f, settled > 0, stepFail("settle an earlier run", err)
			}
			p.log.Warn("settled the unconfirmed apply of an earlier run", "token", g.Token, "outcome", out)
			settled++
		}
		var err error
		if f, err = h.Facts(ctx); err != nil {
			return f, settled > 0, stepFail("read live rules", err)
		}
	}
	return f, true, fail("lock", errors.New("the applies of earlier runs on this host do not settle"))
}

// gone reports whether the run that left g is gone: its apply ended long
// before (a live fwpush confirms within a timeout or two) and nobody
// confirmed it, or its guard's time has passed without the guard deciding.
// What the host could not tell (a zero time) proves nothing.
func gone(g remote.Guard, timeout time.Duration) bool {
	return g.Status != "" && !g.Started.IsZero() && g.Now.Sub(g.Started) > 2*timeout+5*time.Second ||
		!g.FireAt.IsZero() && !g.Now.Before(g.FireAt)
}

// confirm proves that the host still lets new SSH connections from fwpush
// in, then in one command learns how the detached apply went (waiting on
// the host for it), disarms the guard and persists. The proof must come
// from a new connection, made after the apply: established connections
// may survive a policy that new ones do not. With a Fleet that is a
// Prover, it is a knock (a new TCP connection to the host's SSH port, from
// where fwpush's connections come from, that gets sshd's banner), and the
// confirm then runs over h, the connection the apply ran on, which proves
// that the established part of a login passes too; should h have ended,
// a fresh connection confirms instead. Without a Prover, the proof is a
// fresh SSH connection, over which the confirm runs.
//
// Until the guard's deadline
// a host that cannot be reached is tried again every Poll. Past the
// deadline the host rolls back by itself; confirm then waits for that and
// looks again, so that the report says what the host really ended up with:
// rolled back only once the host says its old rules are back.
func (p *pusher) confirm(ctx context.Context, h Host, token string, deadline *guardClock, persist remote.Persist) error {
	pc := &proven{p: p, h: h}
	pc.prover, _ = p.fleet.(Prover)
	if pc.prover == nil && h != nil {
		h.Close() // the proof is a fresh connection
	}
	if pc.prover == nil || h == nil {
		pc.h = nil
	}
	var t tries
	for {
		began := time.Now()
		conf, err := pc.confirm(ctx, remote.Confirm{Token: token, Wait: time.Until(deadline.at), Persist: persist})
		t.note(conf, err, began)
		deadline.told(conf.Guard)
		if done, err := p.outcome(conf, err, &t, deadline); done {
			return err
		}
		if time.Now().After(deadline.at) {
			break
		}
		if err := sleep(ctx, p.opts.Poll); err != nil {
			return unknown(deadline, err)
		}
	}
	// Give the guard time to restore the old rules, then look again.
	after := time.Now().Add(p.inv.SSH.Timeout + 2*time.Second)
	for {
		if err := sleep(ctx, p.opts.Poll); err != nil {
			return unknown(deadline, err)
		}
		began := time.Now()
		conf, err := pc.confirm(ctx, remote.Confirm{Token: token, Wait: p.inv.SSH.Timeout, Persist: persist})
		t.note(conf, err, began)
		deadline.told(conf.Guard)
		if done, err := p.outcome(conf, err, &t, deadline); done {
			return err // rolled back, or reachable after all and the guard had not fired yet
		}
		if time.Now().After(after) {
			return silent(&t, deadline)
		}
	}
}

// outcome reads a confirmation: done when it settles the host's fate. t
// and g are what the run saw so far, for the cause of a rollback.
func (p *pusher) outcome(conf remote.Confirmation, err error, t *tries, g *guardClock) (done bool, _ error) {
	switch conf.Outcome {
	case remote.Confirmed:
		if conf.By != "" {
			p.log.Warn("superseded by another run, which took this one for gone and kept its apply", "by", conf.By)
		}
		if errors.Is(err, transport.ErrConnectionLost) {
			// Confirmed, and the rest of the answer lost with the
			// connection (its bastion's, say): a confirm again, which
			// the host answers as confirmed and persists, says how the
			// persist went.
			p.log.Info("confirmed; the persist's answer was lost: confirming again", "err", err)
			return false, nil
		}
		if err != nil {
			return true, stepFail("persist", err)
		}
		return true, nil
	case remote.ApplyFailed:
		if p.host.Backend == inventory.NFTables {
			return true, fail("apply", fmt.Errorf("the apply failed, the previous table and rules restored: %s", conf.Log))
		}
		return true, fail("apply", fmt.Errorf("iptables-restore failed, old rules restored: %s", conf.Log))
	case remote.RolledBack:
		return true, rolledBack(conf, t, g)
	case remote.Superseded:
		return true, superseded(conf)
	}
	return false, nil
}

// mover is a fleet that can tell that the way to a host moved to another
// bastion since the host was opened (SSHFleet: see Moved).
type mover interface {
	Moved(h *inventory.Host) bool
}

// proven runs the confirms of one host's apply, each after its proof.
type proven struct {
	p      *pusher
	prover Prover // nil: each confirm runs over a fresh connection
	// h is the connection the apply ran on, while it serves; nil once
	// it has failed, or without a prover.
	h Host
}

// confirm proves that a new connection gets in, then runs c.
func (pc *proven) confirm(ctx context.Context, c remote.Confirm) (remote.Confirmation, error) {
	if pc.h == nil {
		return pc.p.confirmFresh(ctx, c)
	}
	if err := pc.prover.Prove(ctx, pc.p.host); err != nil {
		return remote.Confirmation{}, err
	}
	if m, ok := pc.prover.(mover); ok && m.Moved(pc.p.host) {
		// The knock failed over to another bastion: the connection the
		// apply ran on went with the old one.
		pc.p.log.Info("the way to the host moved to another bastion; confirming over a fresh connection")
		_ = pc.h.Close()
		pc.h = nil
		return pc.p.confirmFresh(ctx, c)
	}
	conf, err := pc.h.Confirm(ctx, c)
	if err != nil && (conf.Outcome == "" || errors.Is(err, transport.ErrConnectionLost)) {
		// The connection the apply ran on failed (the new rules may end
		// established connections, a tunnel's): a fresh one confirms,
		// its login the proof. A confirm whose answer was lost is
		// confirmed again: the host says it was.
		pc.p.log.Info("the connection the apply ran on failed; confirming over a fresh one", "err", err)
		_ = pc.h.Close()
		pc.h = nil
		return pc.p.confirmFresh(ctx, c)
	}
	return conf, err
}

// confirmFresh runs Confirm over a fresh connection.
func (p *pusher) confirmFresh(ctx context.Context, c remote.Confirm) (remote.Confirmation, error) {
	h, err := p.fleet.OpenFresh(ctx, p.host)
	if err != nil {
		return remote.Confirmation{}, err
	}
	defer h.Close()
	return h.Confirm(ctx, c)
}

// Who names this fwpush process for other runs: user@host pid N.
func Who() string {
	return fmt.Sprintf("%s pid %d", User(), os.Getpid())
}

// User names who runs fwpush, and where: user@host, as Who without the
// process, for the hosts' histories.
func User() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if u, err := osuser.Current(); err == nil {
		user = u.Username
	}
	return user + "@" + host
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
