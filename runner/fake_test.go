package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/remote/remotetest"
	"github.com/fwpush/fwpush/runner/transport"
)

// The fake fleet: hosts that answer the steps of the host protocol
// (runner/remote) — facts, apply under a guard and the host lock, confirm,
// settle, persist — with no network and no shell, for the push's tests:
// which steps run, in which order, over which connections, and what a run
// reports. The facts a host tells are set by the test; an apply loads its
// documents as they are, flush lines aside, and nothing else's chains.
// The fake answers every case of remotetest as the scripts do
// (TestFakeCases; runner/remote's TestCases runs the scripts through the
// same cases), so a change of the scripts' behaviour recorded there is
// caught where the fake disagrees. It keeps one run, the latest: a run
// that another run's apply replaced is superseded (the host closes an
// undecided one so when its guard stands down). What the host's rules
// do is not modelled: what a run decides from the facts is package
// change's (its table tests), what the scripts send is remote's recorder
// test, and that the scripts and iptables work is the lab's.

var (
	_ Fleet = (*fakeFleet)(nil)
	_ Host  = (*fakeConn)(nil)
)

// fakeFleet reaches fakeHosts the way SSHFleet does: the tunnel host on the
// fleet's tunnel connection (a fresh one replaces it), every other host on
// a connection through it, which ends with that connection.
type fakeFleet struct {
	t      *testing.T
	tunnel string
	hosts  map[string]*fakeHost

	mu         sync.Mutex
	reconnects int
	// tunnelGen counts the connections to the tunnel host; tunnelBroken
	// is set when the current one has ended and not been replaced.
	tunnelGen    int
	tunnelBroken bool
	// events lists, in order, "apply HOST" for every Apply and "reconnect"
	// for every fresh tunnel connection.
	events []string

	// inFlight counts hosts with at least one open connection.
	inFlight, maxInFlight atomic.Int32
}

// newFakeFleet simulates every host of inv as a freshly installed server:
// an open filter table with one hand-made rule, iptables-persistent
// installed, no file of fwpush's.
func newFakeFleet(t *testing.T, inv *inventory.Inventory) *fakeFleet {
	t.Helper()
	f := newFleet(t, inv.SSH.Tunnel)
	for _, h := range inv.Hosts {
		links := []string{"lo", h.PrivateIface}
		if h.HasPublic() {
			links = append(links, h.PublicIface)
		}
		f.hosts[h.Name] = &fakeHost{
			t:     t,
			fleet: f,
			name:  h.Name,
			facts: remote.Facts{
				Tools:   []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"},
				Backend: "nf_tables",
				Links:   links,
				IPSet:   true,
			},
			live4:      strings.Replace(openTable, "COMMIT\n", handRule+"COMMIT\n", 1),
			live6:      openTable,
			files:      map[string]string{},
			persistent: true,
			writes:     map[string]int{},
			applyDelay: 20 * time.Millisecond,
			// The tunnel's new rules end the connection fwpush holds to
			// it, and every channel through it, as a real one may.
			breaksTunnel: h.Name == inv.SSH.Tunnel,
		}
	}
	return f
}

// newFleet is a fleet of no host yet, whose guards are stopped when t ends.
func newFleet(t *testing.T, tunnel string) *fakeFleet {
	f := &fakeFleet{t: t, tunnel: tunnel, hosts: map[string]*fakeHost{}}
	t.Cleanup(func() {
		for _, h := range f.hosts {
			h.mu.Lock()
			if h.guard != nil {
				h.guard.Stop()
			}
			h.mu.Unlock()
		}
	})
	return f
}

// openTable is what a server that never had a firewall has loaded.
const openTable = "*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n"

// handRule is a rule someone added by hand before fwpush came.
const handRule = "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"

func (f *fakeFleet) host(name string) *fakeHost {
	f.t.Helper()
	h, ok := f.hosts[name]
	if !ok {
		f.t.Fatalf("no fake host %q", name)
	}
	return h
}

// Open implements Fleet.
func (f *fakeFleet) Open(ctx context.Context, ih *inventory.Host) (Host, error) {
	return f.openKind(ctx, ih, "open")
}

func (f *fakeFleet) open(ctx context.Context, ih *inventory.Host) (Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, ok := f.hosts[ih.Name]
	if !ok {
		f.t.Errorf("open of a host that is not in the fleet: %s", ih.Name)
		return nil, fmt.Errorf("host %s: no such host", ih.Name)
	}
	gen := -1 // the tunnel host follows the current tunnel connection
	if ih.Name != f.tunnel {
		f.mu.Lock()
		gen = f.tunnelGen
		f.mu.Unlock()
	}
	if err := f.tunnelConn(gen); err != nil {
		return nil, fmt.Errorf("host %s: connect: %w", ih.Name, err)
	}
	if ih.Name != f.tunnel && f.hosts[f.tunnel].down() {
		return nil, fmt.Errorf("host %s: connect through %s: %w", ih.Name, f.tunnel, transport.ErrTunnelDown)
	}
	if h.down() {
		return nil, fmt.Errorf("host %s: connect: dial tcp: i/o timeout", ih.Name)
	}
	return h.open(func() error { return f.tunnelConn(gen) }), nil
}

// openKind records how a host was connected to: "open" or "fresh".
func (f *fakeFleet) openKind(ctx context.Context, ih *inventory.Host, kind string) (Host, error) {
	c, err := f.open(ctx, ih)
	if err == nil {
		h := f.hosts[ih.Name]
		h.mu.Lock()
		h.opened = append(h.opened, kind)
		h.mu.Unlock()
	}
	return c, err
}

// OpenFresh implements Fleet: for the tunnel host, a new tunnel connection.
func (f *fakeFleet) OpenFresh(ctx context.Context, ih *inventory.Host) (Host, error) {
	if ih.Name == f.tunnel {
		if err := f.reconnect(ctx); err != nil {
			return nil, err
		}
	}
	return f.openKind(ctx, ih, "fresh")
}

// tunnelConn reports whether the tunnel connection a host's connection
// runs on is alive: the current one for gen -1, else connection number gen.
func (f *fakeFleet) tunnelConn(gen int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tunnelBroken {
		return transport.ErrTunnelDown
	}
	if gen >= 0 && gen != f.tunnelGen {
		return fmt.Errorf("channel through a replaced tunnel connection: %w", net.ErrClosed)
	}
	return nil
}

func (f *fakeFleet) breakTunnel() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tunnelBroken = true
}

func (f *fakeFleet) reconnect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	down := f.hosts[f.tunnel].down()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconnects++
	f.events = append(f.events, "reconnect")
	if down {
		return fmt.Errorf("host %s: reconnect: i/o timeout", f.tunnel)
	}
	f.tunnelGen++
	f.tunnelBroken = false
	return nil
}

func (f *fakeFleet) record(event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event)
}

// applied returns the hosts that ran Apply, in order.
func (f *fakeFleet) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		if name, ok := strings.CutPrefix(e, "apply "); ok {
			out = append(out, name)
		}
	}
	return out
}

func (f *fakeFleet) snapshotEvents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeFleet) reconnectCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reconnects
}

// resetCounters forgets what earlier runs did, keeping every host's state.
func (f *fakeFleet) resetCounters() {
	f.mu.Lock()
	f.reconnects, f.events = 0, nil
	f.mu.Unlock()
	f.maxInFlight.Store(0)
	for _, h := range f.hosts {
		h.mu.Lock()
		h.restores, h.rollbacks, h.installs, h.ran, h.opened = 0, 0, 0, nil, nil
		h.writes = map[string]int{}
		h.mu.Unlock()
	}
}

// Files of a host that tests look at.
const (
	fileRulesV4 = "/etc/iptables/rules.v4"
	fileRulesV6 = "/etc/iptables/rules.v6"
	fileApplied = "/var/lib/fwpush/applied"
	fileIPSets  = "/etc/iptables/ipsets"
)

// fakeHost is one simulated server.
type fakeHost struct {
	t     *testing.T
	fleet *fakeFleet
	name  string

	mu sync.Mutex
	// facts are what the host tells but for its rules, its files and the
	// runs at work on it, which the fields below hold.
	facts remote.Facts
	// live4 and live6 are the loaded filter tables, in canonical form.
	live4, live6 string
	files        map[string]string // path → content
	persistent   bool              // iptables-persistent is installed
	lock         *fakeLock         // the host lock; nil when free
	// sets is what ipset save prints of fwpush's sets (see
	// fakesets_test.go); persistentSets: ipset-persistent is installed.
	sets           string
	persistentSets bool

	// Behaviour, set by a test before a run.
	unreachable   bool          // every connection fails
	testStderr    string        // the test of the new rules fails with this
	applyLog      string        // the detached apply fails with this log (iptables-restore refused the rules)
	cutAfterApply bool          // the new rules cut SSH until the guard restores the old ones
	breaksTunnel  bool          // the new rules end the tunnel connection (the tunnel host)
	applyDelay    time.Duration // how long the detached apply takes
	factsDelay    time.Duration // how long Facts takes

	// The run in progress, as the host keeps it under /run/fwpush/runs.
	token      string
	new4, new6 string
	old4, old6 string
	setDocs    remote.Sets // the apply's ipset documents
	oldSets    string      // the sets before the apply
	status     string      // the detached apply's outcome: "", ok, failed, skipped
	log        string      // the detached apply's output, when it failed
	// outcome is how the run was decided, by whoever won (the guard, a
	// confirm or a settle): "" while undecided, then confirmed, failed,
	// rolledback or kept.
	outcome    string
	guard      *time.Timer
	guardDelay time.Duration
	started    time.Time // when the last apply started

	// What happened.
	cut       bool // the loaded rules refuse SSH
	restores  int  // Apply runs that started an apply
	rollbacks int  // old rules restored by the guard
	installs  int  // iptables-persistent installations
	writes    map[string]int
	ran       []string // the steps run, in order
	opened    []string // the connections opened, in order: "open" or "fresh"
	settled   string   // how Settle decided the last apply: "kept" or "rolledback"
	conns     int      // open connections
}

func (h *fakeHost) down() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unreachable || h.cut
}

// set changes the host under its lock, for tests.
func (h *fakeHost) set(fn func(h *fakeHost)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(h)
}

// state returns a copy of what a test asserts on.
func (h *fakeHost) state() fakeState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := fakeState{
		Live4: h.live4, Live6: h.live6, Files: map[string]string{}, Persistent: h.persistent,
		Restores: h.restores, Rollbacks: h.rollbacks, Installs: h.installs, Ran: slices.Clone(h.ran), Opened: slices.Clone(h.opened),
		WriteCounts: map[string]int{}, Decided: h.outcome != "", GuardDelay: h.guardDelay,
	}
	for k, v := range h.files {
		s.Files[k] = v
	}
	for path, n := range h.writes {
		s.Writes += n
		s.WriteCounts[path] = n
	}
	return s
}

type fakeState struct {
	Live4, Live6 string
	Files        map[string]string
	Persistent   bool
	Restores     int
	Rollbacks    int
	Installs     int
	Writes       int            // files written, all paths
	WriteCounts  map[string]int // files written, by path
	Ran          []string
	Opened       []string
	Decided      bool          // the guard of the last apply is disarmed or has fired
	GuardDelay   time.Duration // the delay the last guard was armed with
}

// fakeConn is one connection to a fakeHost.
type fakeConn struct {
	h      *fakeHost
	alive  func() error // whether the tunnel connection under it is there
	closed atomic.Bool
}

// open opens a connection; a host with an open connection is in flight.
func (h *fakeHost) open(alive func() error) *fakeConn {
	h.mu.Lock()
	h.conns++
	if h.conns == 1 {
		n := h.fleet.inFlight.Add(1)
		for {
			m := h.fleet.maxInFlight.Load()
			if n <= m || h.fleet.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
	}
	h.mu.Unlock()
	return &fakeConn{h: h, alive: alive}
}

func (c *fakeConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns--
	if h.conns == 0 {
		h.fleet.inFlight.Add(-1)
	}
	return nil
}

// begin checks that a step can run on the connection and records it.
func (c *fakeConn) begin(ctx context.Context, step string) error {
	h := c.h
	if c.closed.Load() {
		h.t.Errorf("host %s: %s on a closed connection", h.name, step)
		return net.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.alive(); err != nil {
		return fmt.Errorf("host %s: %s: %w", h.name, step, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unreachable || h.cut {
		return fmt.Errorf("host %s: %s: %w", h.name, step, transport.ErrConnectionLost)
	}
	h.ran = append(h.ran, step)
	return nil
}

func (h *fakeHost) write(path, content string) {
	h.files[path] = content
	h.writes[path]++
}

// Facts implements Host.
func (c *fakeConn) Facts(ctx context.Context) (remote.Facts, error) {
	if c.h.factsDelay > 0 {
		time.Sleep(c.h.factsDelay)
	}
	if err := c.begin(ctx, "facts"); err != nil {
		return remote.Facts{}, err
	}
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return c.h.read(), nil
}

// read is what the host tells of itself now.
func (h *fakeHost) read() remote.Facts {
	f := h.facts
	f.Tools, f.Links, f.Managers = slices.Clone(f.Tools), slices.Clone(f.Links), slices.Clone(f.Managers)
	f.V4, f.V6 = h.live4, h.live6
	f.Persisted4, f.Persisted6 = h.files[fileRulesV4], h.files[fileRulesV6]
	f.Applied = strings.TrimSpace(h.files[fileApplied])
	f.Persistent = h.persistent
	f.Sets, f.PersistedSets, f.PersistentSets = h.sets, h.files[fileIPSets], h.persistentSets
	if l := h.lock; l != nil {
		f.Lock = &remote.Lock{Token: l.token, Expires: l.expires, Who: l.who, Now: time.Now()}
	}
	if h.token != "" && h.outcome == "" {
		f.Guards = []remote.Guard{{Token: h.token, Status: h.status, Started: h.started, FireAt: h.started.Add(h.guardDelay), Now: time.Now()}}
	}
	return f
}

// facts is what the host tells of itself now, for tests.
func (h *fakeHost) readFacts() remote.Facts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.read()
}

// fakeLock is a run's hold on the host lock.
type fakeLock struct {
	token, who string
	expires    time.Time // its lease ends
}

// release lets the host lock go, if run token holds it.
func (h *fakeHost) release(token string) {
	if h.lock != nil && h.lock.token == token {
		h.lock = nil
	}
}

// Apply implements Host: take the host lock, test the new rules, save the
// old ones, arm the guard, start the detached apply. Both the guard and
// the apply run on their own, as the setsid'd scripts do, whatever happens
// to fwpush's connections.
func (c *fakeConn) Apply(ctx context.Context, a remote.Apply) error {
	if err := c.begin(ctx, "apply"); err != nil {
		return &remote.StepError{Step: "apply", Err: err}
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	failed := func(step string, status int, stderr string) error {
		return &remote.StepError{Step: step, NothingChanged: true,
			Err: &transport.RemoteError{Host: h.name, Cmd: "apply", ExitStatus: status, Stderr: []byte(stderr)}}
	}
	// Another run's lock is waited for, until its lease ends.
	for wait := time.Now().Add(remote.RollbackSeconds(a.LockWait)); h.lock != nil && !time.Now().After(h.lock.expires); {
		if !time.Now().Before(wait) {
			return failed("lock", 15, "another run of fwpush holds this host: "+h.lock.who)
		}
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		h.mu.Lock()
	}
	// The sets the new rules match are staged before they are tested;
	// anything that fails before the guard is armed unstages them.
	staged, err := ipsetRestore(h.sets, string(a.Sets.Stage))
	if err != nil {
		return &remote.StepError{Step: "stage sets (ipset restore)", NothingChanged: true,
			Err: &transport.RemoteError{Host: h.name, Cmd: "apply", ExitStatus: 16, Stderr: []byte(err.Error())}}
	}
	if h.testStderr != "" {
		return failed("test (iptables-restore --test)", 12, h.testStderr)
	}
	if n := remotetest.Refused(string(a.V4), true); n > 0 {
		return failed("test (iptables-restore --test)", 12, fmt.Sprintf("iptables-restore: line %d failed", n))
	}
	if n := remotetest.Refused(string(a.V6), true); n > 0 {
		return failed("test (ip6tables-restore --test)", 13, fmt.Sprintf("ip6tables-restore: line %d failed", n))
	}
	h.lock = &fakeLock{token: a.Token, who: a.Who, expires: time.Now().Add(remote.RollbackSeconds(max(a.Lease, a.RollbackAfter)))}
	h.oldSets, h.sets, h.setDocs = h.sets, staged, a.Sets
	h.restores++
	h.fleet.record("apply " + h.name)
	h.token, h.new4, h.new6 = a.Token, string(a.V4), string(a.V6)
	// A table never made saves as an open one.
	h.old4, h.old6 = cmp.Or(h.live4, remotetest.Open), cmp.Or(h.live6, remotetest.Open)
	h.status, h.log, h.outcome = "", "", ""
	h.guardDelay = remote.RollbackSeconds(a.RollbackAfter)
	h.started = time.Now()
	token := a.Token
	h.guard = time.AfterFunc(h.guardDelay, func() { h.fireGuard(token) })
	time.AfterFunc(h.applyDelay, h.detachedApply)
	// The script waits for the apply; new rules that end the connection
	// it runs on end its answer too.
	for wait := time.Now().Add(h.guardDelay); h.status == "" && time.Now().Before(wait); {
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		h.mu.Lock()
	}
	if err := c.alive(); err != nil || h.cut {
		return &remote.StepError{Step: "apply", Err: fmt.Errorf("host %s: apply: %w", h.name, transport.ErrConnectionLost)}
	}
	return nil
}

func (h *fakeHost) detachedApply() {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Under the run's lock: a run decided already (a guard that rolled
	// back) makes the apply skip.
	if h.outcome != "" {
		h.status = "skipped"
		return
	}
	// iptables-restore refuses the new rules: the old ones go back.
	h.log = h.applyLog
	if n := remotetest.Refused(h.new4, false); n > 0 && h.log == "" {
		h.log = fmt.Sprintf("iptables-restore: line %d failed", n)
	}
	if n := remotetest.Refused(h.new6, false); n > 0 && h.log == "" {
		h.log = fmt.Sprintf("ip6tables-restore: line %d failed", n)
	}
	if h.log != "" {
		h.sets = h.oldSets // and the old sets, as they were
		h.status = "failed"
		return
	}
	h.live4, h.live6 = loaded(h.new4), loaded(h.new6)
	h.sets = h.ipset(h.sets, string(h.setDocs.Swap))
	h.status = "ok"
	if h.cutAfterApply {
		h.cut = true
	}
	if h.breaksTunnel {
		h.fleet.breakTunnel()
	}
}

// fireGuard is the guard waking up: unless the run was decided, or a
// newer run took over, it restores the old rules.
func (h *fakeHost) fireGuard(token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.token != token || h.outcome != "" {
		return
	}
	h.rollback()
	h.rollbacks++
	h.cut = false // the old rules let fwpush in
}

// rollback decides the run: its old rules back, the host lock released.
func (h *fakeHost) rollback() {
	h.outcome = "rolledback"
	h.live4, h.live6, h.sets = h.old4, h.old6, h.oldSets
	h.release(h.token)
}

// Confirm implements Host: wait (in the host's own small steps) for the
// apply, then the outcome; once confirmed, persist. As confirm.sh.
func (c *fakeConn) Confirm(ctx context.Context, cf remote.Confirm) (remote.Confirmation, error) {
	if err := c.begin(ctx, "confirm"); err != nil {
		return remote.Confirmation{}, &remote.StepError{Step: "confirm", Err: err}
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.token != cf.Token {
		return remote.Confirmation{Outcome: remote.Superseded}, nil
	}
	for wait := time.Now().Add(cf.Wait); h.status == "" && h.outcome == "" && time.Now().Before(wait); {
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		h.mu.Lock()
	}
	switch {
	case h.status == "failed":
		if h.outcome == "" {
			h.outcome = "failed"
			h.guard.Stop()
		}
		h.release(h.token)
		return remote.Confirmation{Outcome: remote.ApplyFailed, Log: h.log}, nil
	case h.status == "ok" && h.outcome == "":
		h.outcome = "confirmed"
		h.guard.Stop()
		h.sets = h.ipset(h.sets, string(h.setDocs.Drop))
	case h.outcome == "":
		return remote.Confirmation{Outcome: remote.Pending}, nil
	}
	// Decided: by this confirm, an earlier one, the guard or a settle.
	switch h.outcome {
	case "confirmed", "kept":
		h.release(h.token)
		return remote.Confirmation{Outcome: remote.Confirmed}, h.persist(cf.Persist)
	case "rolledback":
		return remote.Confirmation{Outcome: remote.RolledBack}, nil
	}
	return remote.Confirmation{Outcome: remote.Pending}, nil
}

// Settle implements Host: decide an earlier run's apply, as settle.sh.
func (c *fakeConn) Settle(ctx context.Context, token string, keep bool) (remote.Outcome, error) {
	if err := c.begin(ctx, "settle"); err != nil {
		return "", &remote.StepError{Step: "settle an earlier run", Err: err}
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.token != token {
		return remote.Superseded, nil
	}
	if h.outcome == "" {
		h.guard.Stop()
		if keep {
			h.outcome, h.settled = "kept", "kept"
			h.sets = h.ipset(h.sets, string(h.setDocs.Drop))
		} else {
			h.rollback()
			h.settled = "rolledback"
		}
	}
	h.release(token)
	switch h.outcome {
	case "failed":
		return remote.ApplyFailed, nil
	case "rolledback":
		return remote.RolledBack, nil
	}
	return remote.Confirmed, nil
}

// Persist implements Host.
func (c *fakeConn) Persist(ctx context.Context, p remote.Persist) error {
	if err := c.begin(ctx, "persist"); err != nil {
		return &remote.StepError{Step: "persist", Err: err}
	}
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return c.h.persist(p)
}

// persist writes what p asks, the rules files before the installation, as
// the script does.
func (h *fakeHost) persist(p remote.Persist) error {
	if p.Sets != nil {
		h.write(fileIPSets, string(p.Sets))
	}
	if p.InstallSets {
		h.persistentSets = true
	}
	if p.V4 != nil {
		h.write(fileRulesV4, string(p.V4))
	}
	if p.V6 != nil {
		h.write(fileRulesV6, string(p.V6))
	}
	if p.Install {
		if h.files[fileRulesV4] == "" {
			h.t.Errorf("host %s: iptables-persistent installed before rules.v4 was written", h.name)
		}
		h.installs++
		h.persistent = true
	}
	if d := strings.TrimSpace(p.Digest); d != "" {
		h.write(fileApplied, d+"\n")
	}
	return nil
}

// Probe implements Host; the push never probes.
func (c *fakeConn) Probe(context.Context, []remote.Probe, remote.ProbeOptions) ([]remote.ProbeResult, time.Duration, error) {
	c.h.t.Errorf("host %s: probed during a push", c.h.name)
	return nil, 0, errors.New("not a prober")
}

// loaded is the table a host has once it loaded doc with --noflush, on a
// host with no chain of anyone else's: doc without its flush lines.
func loaded(doc string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(doc, "\n") {
		if l != "" && !strings.HasPrefix(l, "-F ") && !strings.HasPrefix(l, "-X ") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// newTestPlan compiles testdata/push.toml and simulates its fleet.
func newTestPlan(t *testing.T) (*roles.Plan, *fakeFleet) {
	t.Helper()
	inv, err := inventory.Load("testdata/push.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plan, newFakeFleet(t, inv)
}

// ipset is sets once ipset restore has run doc, which must not fail.
func (h *fakeHost) ipset(sets, doc string) string {
	out, err := ipsetRestore(sets, doc)
	if err != nil {
		h.t.Errorf("host %s: %v", h.name, err)
	}
	return out
}
