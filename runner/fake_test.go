package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
)

// The fake SSH layer: a fleet of simulated servers that answer the constant
// commands of remote.go the way a Debian host with iptables would, with no
// network. Tests set a host's state and behaviour, run the pipeline, then
// read what the host ended up with and what it was asked to do.

var (
	_ Fleet   = (*fakeFleet)(nil)
	_ Session = (*fakeSession)(nil)
)

// fakeSession is a Session made of functions.
type fakeSession struct {
	RunFn   func(ctx context.Context, cmd string, stdin []byte) (Result, error)
	CloseFn func() error
}

func (s *fakeSession) Run(ctx context.Context, cmd string, stdin []byte) (Result, error) {
	return s.RunFn(ctx, cmd, stdin)
}

func (s *fakeSession) Close() error { return s.CloseFn() }

// fakeFleet reaches fakeHosts. Its function fields start as the simulation
// and may be wrapped by a test; its state records what a run did.
type fakeFleet struct {
	t      *testing.T
	tunnel string
	hosts  map[string]*fakeHost

	DialFn      func(ctx context.Context, t Target) (Session, error)
	DialFreshFn func(ctx context.Context, t Target) (Session, error)
	ReconnectFn func(ctx context.Context) error

	mu         sync.Mutex
	reconnects int
	// tunnelGen counts the connections to the tunnel host; tunnelBroken
	// is set when the current one has ended and not been replaced.
	tunnelGen    int
	tunnelBroken bool
	// events lists, in order, "apply HOST" for every cmdApply and
	// "reconnect" for every Reconnect.
	events []string

	// inFlight counts hosts with at least one open session.
	inFlight, maxInFlight atomic.Int32
}

func (f *fakeFleet) Dial(ctx context.Context, t Target) (Session, error) { return f.DialFn(ctx, t) }
func (f *fakeFleet) DialFresh(ctx context.Context, t Target) (Session, error) {
	return f.DialFreshFn(ctx, t)
}
func (f *fakeFleet) Reconnect(ctx context.Context) error { return f.ReconnectFn(ctx) }

// newFakeFleet simulates every host of inv as a freshly installed server:
// an open filter table with one hand-made rule, iptables-persistent
// installed, no file of fwpush's.
func newFakeFleet(t *testing.T, inv *inventory.Inventory) *fakeFleet {
	t.Helper()
	f := &fakeFleet{t: t, tunnel: inv.SSH.Tunnel, hosts: map[string]*fakeHost{}}
	f.DialFn = func(ctx context.Context, t Target) (Session, error) { return f.dial(ctx, t, false) }
	f.DialFreshFn = func(ctx context.Context, t Target) (Session, error) { return f.dial(ctx, t, true) }
	f.ReconnectFn = f.reconnect
	tun := inv.Tunnel()
	for i, h := range inv.Hosts {
		fh := &fakeHost{
			t:          t,
			fleet:      f,
			name:       h.Name,
			addr:       TargetFor(inv, h).Addr,
			live4:      strings.Replace(openTable, "COMMIT\n", handRule+"COMMIT\n", 1),
			live6:      openTable,
			files:      map[string]string{},
			persistent: true,
			tools:      []string{"iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"},
			links:      []string{"lo", h.PrivateIface},
			addrs:      []string{"1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever"},
			backend:    "iptables v1.8.9 (nf_tables)",
			writes:     map[string]int{},
			applyDelay: 20 * time.Millisecond,
			// The tunnel's new rules end the connection fwpush holds to
			// it, and every channel through it, as a real one may.
			breaksTunnel: h.Name == inv.SSH.Tunnel,
		}
		if h.HasPublic() {
			fh.links = append(fh.links, h.PublicIface)
			slices.Sort(fh.links)
			if h.PublicIP.IsValid() {
				fh.addrs = append(fh.addrs, fmt.Sprintf("2: %s    inet %s/24 brd 203.0.113.255 scope global %s\\       valid_lft forever preferred_lft forever", h.PublicIface, h.PublicIP, h.PublicIface))
			}
			if h.PublicIP6.IsValid() {
				fh.addrs = append(fh.addrs, fmt.Sprintf("2: %s    inet6 %s/64 scope global \\       valid_lft forever preferred_lft forever", h.PublicIface, h.PublicIP6))
			}
		}
		fh.addrs = append(fh.addrs, fmt.Sprintf("3: %s    inet %s/24 brd 198.18.0.255 scope global %s\\       valid_lft forever preferred_lft forever", h.PrivateIface, h.PrivateIP, h.PrivateIface))
		// fwpush comes from the operator's machine to the tunnel's public
		// address, and from the tunnel's private address to everyone else.
		if h.Name == tun.Name {
			fh.sshConn = fmt.Sprintf("192.0.2.50 %d %s %d", 50000+i, h.PublicIP, h.Port)
		} else {
			fh.sshConn = fmt.Sprintf("%s %d %s %d", tun.PrivateIP, 50000+i, h.PrivateIP, h.Port)
		}
		f.hosts[h.Name] = fh
	}
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

// dial opens a session as JumpDialer does: the tunnel host's sessions run
// on the tunnel connection (a fresh one on a new direct connection), every
// other host's on a channel through the tunnel connection, which ends with
// that connection.
func (f *fakeFleet) dial(ctx context.Context, t Target, fresh bool) (Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, ok := f.hosts[t.Name]
	if !ok {
		f.t.Errorf("dial of a host that is not in the fleet: %+v", t)
		return nil, fmt.Errorf("host %s: no such host", t.Name)
	}
	if t.Addr != h.addr {
		f.t.Errorf("host %s dialled at %s, want %s", t.Name, t.Addr, h.addr)
	}
	var conn func() error // nil: a direct connection of its own
	switch {
	case t.Name == f.tunnel && fresh:
	case t.Name == f.tunnel:
		conn = func() error { return f.tunnelConn(-1) }
	default:
		f.mu.Lock()
		gen := f.tunnelGen
		f.mu.Unlock()
		conn = func() error { return f.tunnelConn(gen) }
	}
	if conn != nil {
		if err := conn(); err != nil {
			return nil, fmt.Errorf("host %s: connect: %w", t.Name, err)
		}
	}
	if t.Name != f.tunnel && f.hosts[f.tunnel].down() {
		return nil, fmt.Errorf("host %s: connect through %s: %w", t.Name, f.tunnel, ErrTunnelDown)
	}
	if h.down() {
		return nil, fmt.Errorf("host %s: connect: dial tcp %s: i/o timeout", t.Name, t.Addr)
	}
	return h.session(conn), nil
}

// tunnelConn reports whether the tunnel connection a session uses is
// alive: the current one for gen -1, else connection number gen.
func (f *fakeFleet) tunnelConn(gen int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tunnelBroken {
		return ErrTunnelDown
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

// applied returns the hosts that ran cmdApply, in order.
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
		h.restores, h.rollbacks, h.installs, h.ran = 0, 0, 0, nil
		h.writes = map[string]int{}
		h.mu.Unlock()
	}
}

// Files of a host, as remote.go names them.
const (
	runDir       = "/run/fwpush/run/"
	fileRulesV4  = "/etc/iptables/rules.v4"
	fileRulesV6  = "/etc/iptables/rules.v6"
	fileApplied  = "/var/lib/fwpush/applied"
	fileDecided  = runDir + "decided"
	fileStatus   = runDir + "applied.status"
	fileApplyLog = runDir + "apply.log"
	fileToken    = runDir + "token"
	fileWait     = runDir + "rollback_after"
	fileNewV4    = runDir + "new.v4"
	fileNewV6    = runDir + "new.v6"
	fileOldV4    = runDir + "old.v4"
	fileOldV6    = runDir + "old.v6"
	fileOutcome  = runDir + "outcome"
	fileGuardPID = runDir + "guard.pid"
)

// cmdNames names the commands of remote.go in a host's log.
var cmdNames = map[string]string{
	cmdFacts:             "facts",
	cmdPrepare:           "prepare",
	cmdPutV4:             "put v4",
	cmdPutV6:             "put v6",
	cmdPutWait:           "put wait",
	cmdTest:              "test",
	cmdApply:             "apply",
	cmdConfirm:           "confirm",
	cmdInstallPersistent: "install",
	cmdPersistV4:         "persist v4",
	cmdPersistV6:         "persist v6",
	cmdState:             "state",
}

// fakeHost is one simulated server.
type fakeHost struct {
	t     *testing.T
	fleet *fakeFleet
	name  string
	addr  string // where fwpush must dial it: TargetFor's address

	mu sync.Mutex
	// live4 and live6 are the loaded filter tables, as iptables-restore
	// documents in canonical form; cmdFacts prints them the way
	// iptables-save does (header, counters, footer).
	live4, live6 string
	files        map[string]string // path → content; a directory is ""
	persistent   bool              // iptables-persistent is installed
	tools        []string          // iptables tools on $PATH
	links        []string          // ls /sys/class/net
	addrs        []string          // ip -o addr show
	sshConn      string            // $SSH_CONNECTION of fwpush's sessions
	backend      string            // iptables -V

	// Behaviour, set by a test before a run.
	unreachable   bool          // every connection fails
	testStderr    string        // cmdTest exits 2 with this on stderr
	applyLog      string        // the detached apply fails with this log
	cutAfterApply bool          // the new rules cut SSH until the guard restores the old ones
	breaksTunnel  bool          // the new rules end the tunnel connection (the tunnel host)
	applyDelay    time.Duration // how long the detached apply takes
	lateLog       bool          // the detached apply opens its log only when done
	factsDelay    time.Duration // how long cmdFacts takes

	// What happened.
	cut       bool // the loaded rules refuse SSH
	guard     *time.Timer
	restores  int            // cmdApply runs
	rollbacks int            // old rules restored by the guard
	installs  int            // iptables-persistent installations
	writes    map[string]int // files written, by path
	ran       []string       // cmdNames of the commands run, in order
	sessions  int            // open sessions
	saves     int            // iptables-save runs, to vary the counters
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
		Restores: h.restores, Rollbacks: h.rollbacks, Installs: h.installs, Ran: slices.Clone(h.ran), WriteCounts: map[string]int{},
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
}

// session opens a session; a host with an open session is in flight.
// conn, when set, says whether the connection the session runs on is
// still there.
func (h *fakeHost) session(conn func() error) Session {
	h.mu.Lock()
	h.sessions++
	if h.sessions == 1 {
		n := h.fleet.inFlight.Add(1)
		for {
			m := h.fleet.maxInFlight.Load()
			if n <= m || h.fleet.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
	}
	h.mu.Unlock()
	var closed atomic.Bool
	return &fakeSession{
		RunFn: func(ctx context.Context, cmd string, stdin []byte) (Result, error) {
			if closed.Load() {
				h.t.Errorf("host %s: %s run on a closed session", h.name, cmdNames[cmd])
				return Result{}, net.ErrClosed
			}
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			if conn != nil {
				if err := conn(); err != nil {
					return Result{}, fmt.Errorf("host %s: %s: %w", h.name, shortCmd(cmd), err)
				}
			}
			return h.exec(cmd, stdin)
		},
		CloseFn: func() error {
			if closed.Swap(true) {
				return nil
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sessions--
			if h.sessions == 0 {
				h.fleet.inFlight.Add(-1)
			}
			return nil
		},
	}
}

// exit is a command that ran and failed.
func (h *fakeHost) exit(cmd string, status int, stderr string) (Result, error) {
	res := Result{Stderr: []byte(stderr), ExitStatus: status}
	return res, &RemoteError{Host: h.name, Cmd: cmd, ExitStatus: status, Stderr: res.Stderr}
}

func (h *fakeHost) write(path, content string) {
	h.files[path] = content
	h.writes[path]++
}

func (h *fakeHost) exec(cmd string, stdin []byte) (Result, error) {
	if cmd == cmdFacts && h.factsDelay > 0 {
		time.Sleep(h.factsDelay)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unreachable || h.cut {
		return Result{}, fmt.Errorf("host %s: %s: %w", h.name, shortCmd(cmd), errors.New("connection reset by peer"))
	}
	name, ok := cmdNames[cmd]
	if !ok {
		h.t.Errorf("host %s: unexpected command %q", h.name, cmd)
		return h.exit(cmd, 127, "sh: 1: not found")
	}
	h.ran = append(h.ran, name)
	ok4 := func(s string) Result { return Result{Stdout: []byte(s)} }

	switch cmd {
	case cmdFacts:
		return ok4(h.facts()), nil

	case cmdPrepare:
		for p := range h.files {
			if strings.HasPrefix(p, runDir) {
				delete(h.files, p)
			}
		}
		h.write(fileToken, string(stdin))
		return ok4(""), nil
	case cmdPutV4, cmdPutV6, cmdPutWait:
		if _, ok := h.files[fileToken]; !ok {
			return h.exit(cmd, 2, "sh: 1: cannot create "+runDir+"...: Directory nonexistent")
		}
		h.write(map[string]string{cmdPutV4: fileNewV4, cmdPutV6: fileNewV6, cmdPutWait: fileWait}[cmd], string(stdin))
		return ok4(""), nil

	case cmdTest:
		if h.testStderr != "" {
			return h.exit(cmd, 2, h.testStderr)
		}
		noflush := strings.Contains(cmdTest, "--noflush")
		for _, c := range []struct{ file, live string }{{fileNewV4, h.live4}, {fileNewV6, h.live6}} {
			doc, ok := h.files[c.file]
			if !ok {
				return h.exit(cmd, 2, "sh: 2: cannot open "+c.file+": No such file")
			}
			if _, err := restore(c.live, doc, noflush); err != nil {
				return h.exit(cmd, 2, "iptables-restore: "+err.Error())
			}
		}
		return ok4(""), nil

	case cmdApply:
		return h.apply()

	case cmdConfirm:
		// As the script: the outcome of the detached apply decides, and
		// confirming races the guard for "decided".
		_, decided := h.files[fileDecided]
		switch strings.TrimSpace(h.files[fileStatus]) {
		case "ok":
			if decided {
				return ok4("rolledback\n"), nil
			}
			h.write(fileDecided, "")
			if h.guard != nil {
				h.guard.Stop()
			}
			return ok4("confirmed\n"), nil
		case "failed":
			h.write(fileDecided, "")
			if h.guard != nil {
				h.guard.Stop()
			}
			return ok4("failed\n" + h.files[fileApplyLog]), nil
		case "skipped":
			return ok4("rolledback\n"), nil
		}
		if decided {
			return ok4("rolledback\n"), nil
		}
		return ok4("pending\n"), nil

	case cmdInstallPersistent:
		h.installs++
		h.persistent = true
		return ok4(""), nil

	case cmdPersistV4:
		h.write(fileRulesV4, string(stdin))
		return ok4(""), nil
	case cmdPersistV6:
		h.write(fileRulesV6, string(stdin))
		return ok4(""), nil
	case cmdState:
		h.write(fileApplied, string(stdin))
		return ok4(""), nil
	}
	panic("unreachable")
}

// facts answers cmdFacts.
func (h *fakeHost) facts() string {
	var b strings.Builder
	m := func(name string) { b.WriteString(markPrefix + name + markSuffix + "\n") }
	lines := func(ls []string) {
		for _, l := range ls {
			b.WriteString(l + "\n")
		}
	}
	m("tools")
	lines(h.tools)
	m("backend")
	lines([]string{h.backend})
	m("links")
	lines(h.links)
	m("addrs")
	lines(h.addrs)
	m("conn")
	lines([]string{h.sshConn})
	m("v4")
	b.WriteString(h.save(h.live4))
	m("v6")
	b.WriteString(h.save(h.live6))
	// cat prints a file as it is: one without a final newline runs into
	// the next marker, as on a real host.
	m("persisted4")
	b.WriteString(h.files[fileRulesV4])
	m("persisted6")
	b.WriteString(h.files[fileRulesV6])
	m("applied")
	b.WriteString(h.files[fileApplied])
	m("persistent")
	if h.persistent {
		b.WriteString("install ok installed\n")
	}
	m("end")
	return b.String()
}

// save prints a loaded table the way iptables-save -t filter does: a
// comment header and footer, and the chains' packet counters, which change
// from one save to the next. A host that never loaded rules prints nothing.
func (h *fakeHost) save(doc string) string {
	if doc == "" {
		return ""
	}
	h.saves++
	var b strings.Builder
	b.WriteString("# Generated by iptables-save v1.8.9 (nf_tables) on Thu Jan  1 00:00:00 2026\n")
	for l := range strings.SplitSeq(strings.TrimSuffix(doc, "\n"), "\n") {
		if strings.HasPrefix(l, ":") {
			l += fmt.Sprintf(" [%d:%d]", 17*h.saves, 1500*h.saves)
		}
		b.WriteString(l + "\n")
	}
	b.WriteString("# Completed on Thu Jan  1 00:00:00 2026\n")
	return b.String()
}

// load is iptables-restore of doc onto a host that has no rules.
func load(doc string) string {
	live, err := restore("", doc, false)
	if err != nil {
		panic(err)
	}
	return live
}

// builtinChains are the filter table's chains, in iptables-save's order.
var builtinChains = []string{"INPUT", "FORWARD", "OUTPUT"}

// targets are the jump targets that are not chains.
var targets = map[string]bool{"ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "LOG": true, "NFLOG": true}

// restore simulates iptables-restore of doc's filter table onto live (a
// canonical table, "" for none) and returns the new table as iptables-save
// orders it: chains, built-in first, then every chain's rules. Without
// noflush the table is emptied first; with it, only what doc flushes
// (-F, or the declaration of an existing user chain) is. Like the real
// one, it changes nothing when any line fails.
func restore(live, doc string, noflush bool) (string, error) {
	order := slices.Clone(builtinChains)
	policies := map[string]string{"INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT"}
	rules := map[string][]string{}
	apply := func(text string, noflush bool) error {
		inTable := false
		for n, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			f := strings.Fields(line)
			fail := func() error { return fmt.Errorf("line %d failed: %q", n+1, line) }
			switch {
			case line == "" || strings.HasPrefix(line, "#"):
			case line == "*filter":
				inTable = true
				if !noflush {
					order = slices.Clone(builtinChains)
					rules = map[string][]string{}
				}
			case strings.HasPrefix(line, "*") || !inTable:
				return fail()
			case line == "COMMIT":
				inTable = false
			case strings.HasPrefix(line, ":") && len(f) >= 2:
				name := f[0][1:]
				if _, ok := policies[name]; ok && slices.Contains(builtinChains, name) {
					policies[name] = f[1]
				} else if slices.Contains(order, name) {
					rules[name] = nil // an existing user chain, declared again, is flushed
				} else {
					order = append(order, name)
					policies[name] = "-"
				}
			case len(f) >= 2 && f[0] == "-A" && slices.Contains(order, f[1]):
				for i, tok := range f {
					if (tok == "-j" || tok == "-g") && i+1 < len(f) && !targets[f[i+1]] && !slices.Contains(order, f[i+1]) {
						return fail() // a jump to no chain
					}
				}
				rules[f[1]] = append(rules[f[1]], strings.Join(f, " "))
			case len(f) == 1 && f[0] == "-F":
				rules = map[string][]string{}
			case len(f) == 2 && f[0] == "-F" && slices.Contains(order, f[1]):
				rules[f[1]] = nil
			default:
				return fail()
			}
		}
		if inTable {
			return fmt.Errorf("COMMIT expected at the end")
		}
		return nil
	}
	if live != "" {
		if err := apply(live, false); err != nil {
			return "", fmt.Errorf("live rules: %w", err)
		}
	}
	if err := apply(doc, noflush); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, c := range order {
		b.WriteString(":" + c + " " + policies[c] + "\n")
	}
	for _, c := range order {
		for _, r := range rules[c] {
			b.WriteString(r + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.String(), nil
}

// apply answers cmdApply: save the old rules, arm the guard, start the
// detached apply. Both the guard and the apply run on their own, as the
// setsid'd scripts do, whatever happens to fwpush's sessions.
func (h *fakeHost) apply() (Result, error) {
	for _, f := range []string{fileToken, fileNewV4, fileNewV6, fileWait} {
		if _, ok := h.files[f]; !ok {
			return h.exit(cmdApply, 1, "cat: "+f+": No such file or directory")
		}
	}
	h.restores++
	h.fleet.record("apply " + h.name)
	old4, old6 := h.save(h.live4), h.save(h.live6)
	if !strings.Contains(old4, "*filter") {
		old4 = openTable
	}
	if !strings.Contains(old6, "*filter") {
		old6 = openTable
	}
	h.write(fileOldV4, old4)
	h.write(fileOldV6, old6)

	// sleep(1) takes seconds, fractions too (GNU); a value it cannot read
	// makes it fail at once, and the guard goes on without waiting.
	secs, err := strconv.ParseFloat(strings.TrimSpace(h.files[fileWait]), 64)
	if err != nil || secs < 0 {
		secs = 0
	}
	token := h.files[fileToken]
	h.guard = time.AfterFunc(time.Duration(secs*float64(time.Second)), func() { h.fireGuard(token) })
	h.write(fileGuardPID, "4242\n")
	if !h.lateLog {
		h.write(fileApplyLog, "")
	}
	time.AfterFunc(h.applyDelay, h.detachedApply)
	return Result{Stdout: []byte("armed")}, nil
}

func (h *fakeHost) detachedApply() {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Under run/lock: a guard that already rolled back makes the apply skip.
	if _, ok := h.files[fileDecided]; ok {
		h.write(fileStatus, "skipped\n")
		return
	}
	// The script loads new.v4 and new.v6 as cmdApply says, with or
	// without --noflush.
	noflush := strings.Contains(cmdApply, "--noflush < new.v4")
	new4, err4 := restore(h.live4, h.files[fileNewV4], noflush)
	new6, err6 := restore(h.live6, h.files[fileNewV6], noflush)
	if err := errors.Join(err4, err6); err != nil || h.applyLog != "" {
		// iptables-restore refused the new rules: the old ones go back.
		h.live4, h.live6 = load(h.files[fileOldV4]), load(h.files[fileOldV6])
		msg := h.applyLog
		if err != nil {
			msg = "iptables-restore: " + err.Error()
		}
		h.write(fileApplyLog, msg+"\n")
		h.write(fileStatus, "failed\n")
		return
	}
	h.live4, h.live6 = new4, new6
	if _, ok := h.files[fileApplyLog]; !ok {
		h.write(fileApplyLog, "")
	}
	h.write(fileStatus, "ok\n")
	if h.cutAfterApply {
		h.cut = true
	}
	if h.breaksTunnel {
		h.fleet.breakTunnel()
	}
}

// fireGuard is the guard waking up: unless fwpush confirmed, or a newer
// run took over, it restores the old rules.
func (h *fakeHost) fireGuard(token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.files[fileToken] != token {
		return
	}
	if _, ok := h.files[fileDecided]; ok {
		return
	}
	h.write(fileDecided, "")
	h.live4, h.live6 = load(h.files[fileOldV4]), load(h.files[fileOldV6])
	h.rollbacks++
	h.write(fileOutcome, "rolledback\n")
	h.cut = false // the old rules let fwpush in
}

// testInventory is a small fleet: the tunnel, a public load balancer, two
// app servers and a database. rollback_after is left to RunOptions; the
// timeout bounds confirm's wait for a host to come back.
const testInventory = `
[ssh]
user     = "root"
tunnel   = "tunnel-1"
timeout  = "1s"

[interfaces]
public  = "eth0"
private = "eth1"

[hosts.tunnel-1]
role       = "tunnel"
public_ip  = "203.0.113.10"
private_ip = "198.18.0.10"

[hosts.lb-1]
role       = "lb"
public_ip  = "203.0.113.11"
private_ip = "198.18.0.11"
public_ip6 = "2001:db8::11"

[hosts.app-1]
role       = "app"
private_ip = "198.18.0.21"

[hosts.app-2]
role       = "app"
private_ip = "198.18.0.22"

[hosts.db-1]
role       = "db"
private_ip = "198.18.0.31"

[roles.tunnel]
template   = "tunnel"
public_tcp = [22]

[roles.lb]
template   = "public"
public_tcp = [80, 443]

[roles.app]
template = "private"
allow = [
  { from = "lb",  tcp = [80] },
  { from = "app" },
  { from = "198.51.100.0/24", tcp = [9100] },
]
log_dropped = true

[roles.db]
template = "private"
allow = [ { from = "app", tcp = [3306] } ]
`

// newTestPlan compiles testInventory and simulates its fleet.
func newTestPlan(t *testing.T) (*roles.Plan, *fakeFleet) {
	t.Helper()
	inv, err := inventory.Parse("test.toml", []byte(testInventory))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plan, newFakeFleet(t, inv)
}
