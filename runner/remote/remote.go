// Package remote is fwpush's host protocol: the steps a host goes through
// in a run — read its facts, stage, test and apply the new rules under the
// guard, confirm and persist — each one method, one constant script and one
// round trip, with the step's data on stdin. It sits on one session of the
// SSH transport (runner/transport) and knows nothing of inventories or of
// the order of the steps: the orchestration (runner) decides that.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/runner/transport"
)

// Session runs one fixed script with its data on stdin: a
// transport.Session, or a recorder in tests.
type Session interface {
	Run(ctx context.Context, cmd string, stdin []byte) (transport.Result, error)
	Close() error
}

var (
	_ Session  = transport.Session(nil)
	_ Pinger   = transport.Session(nil)
	_ preparer = transport.Session(nil)
)

// preparer is a Session that opens the next step's channel ahead (see
// transport.Session's Prepare).
type preparer interface{ Prepare(next string) }

// Host speaks the protocol to one host over one session (one SSH
// connection: every method opens a channel on it).
type Host struct {
	sess Session
	o    Options
	// nftRun is set once this session applied a run whose apply is
	// nft's: its confirm is nft's too (see Confirm).
	nftRun bool
}

// Options shape how the protocol runs its scripts on a host.
type Options struct {
	// Timeout is the inventory's: every step's deadline is made of it
	// (see run). 0 means 10s.
	Timeout time.Duration
	// Become runs the scripts that need root under sudo: non-interactive
	// (sudo -n), or, with Password set, with the password on stdin ahead
	// of the data (sudo -S), never on a command line. The probes run as
	// the login user.
	Become   bool
	Password string
	// User and Name are the login user and the host, for messages.
	User, Name string
	// NFT reads the host as one of the nftables backend (its tables in
	// full: see nft-facts.sh).
	NFT bool
	// Who runs fwpush ("user@laptop pid 42"): Settle records it in the
	// outcome of the run it settles, which names it should it come back.
	Who string
}

// New returns the protocol over s; closing the Host closes s.
func New(s Session, o Options) *Host {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	return &Host{sess: s, o: o}
}

// InstallTimeout bounds installing iptables-persistent: apt may wait for
// the dpkg lock, then download and configure.
const InstallTimeout = 5 * time.Minute

// Close closes the session.
func (h *Host) Close() error { return h.sess.Close() }

// ahead has the session open the channel of the next step while this one
// runs, when it can (a transport.Session), and start script on it, if
// set: the next step then waits for fewer round trips. Only a script
// that reads its stdin before it does anything may start ahead: its
// wrapper reads the deadline first (wrap.sh), and nothing runs, not even
// sudo, until the step's Run sends it.
func (h *Host) ahead(script string) {
	p, ok := h.sess.(preparer)
	if !ok {
		return
	}
	next := ""
	if script != "" {
		next, _ = h.command(script)
	}
	p.Prepare(next)
}

// command is what runs script on the host, and how it becomes root.
func (h *Host) command(script string) (string, mode) {
	m := plain
	if h.o.Become && script != sent().probe {
		m = sudo
		if h.o.Password != "" {
			m = sudoPassword
		}
	}
	return wrap(script, m), m
}

// StepError is a step that failed on a host. Step names it the way reports
// do ("test (iptables-restore --test)"); Err is the transport's error,
// usually a *transport.RemoteError with the host's own words on stderr.
type StepError struct {
	Step string
	Err  error
	// NothingChanged is set when the step is known to have failed before
	// it changed anything on the host (a test of the new rules that
	// failed, say). Without it, a failed Apply may have armed the guard
	// and applied: only Confirm can tell.
	NothingChanged bool
	msg            string // what Error says instead of Err's text, if set
}

func (e *StepError) Error() string { return e.Step + ": " + e.Detail() }

// Detail is the error without the step's name.
func (e *StepError) Detail() string {
	if e.msg != "" {
		return e.msg
	}
	return e.Err.Error()
}
func (e *StepError) Unwrap() error { return e.Err }

// steps names what failed from a script's exit status (see scripts.go).
var steps = map[int]string{
	10: "upload",
	11: "upload",
	12: "test (iptables-restore --test)",
	13: "test (ip6tables-restore --test)",
	14: "apply",
	15: "lock",
	16: "stage sets (ipset restore)",
	17: "test (nft -c)",
	18: "install nftables",
	19: "install ipset",
	20: "persist rules.v4",
	21: "persist rules.v6",
	22: "install iptables-persistent",
	23: "record state",
	24: "persist ipsets",
	25: "persist fwpush.nft",
	26: "install fwpush-nftables.service",
}

// run runs script with stdin, on the host under timeout(1) with deadline
// (rounded up to whole seconds): past it, the script and everything it
// started are killed there (but the detached guard and apply, which setsid
// takes out of its process group), so that nothing of fwpush's outlives a
// step, even when fwpush is gone. fwpush waits the deadline plus one
// timeout, the network's share. A failure is a *StepError: the step its
// exit status names, else step.
func (h *Host) run(ctx context.Context, step, script string, deadline time.Duration, stdin []byte) (transport.Result, error) {
	secs := int((deadline + time.Second - 1) / time.Second)
	ctx = transport.WithStep(ctx, step) // -vv names the step, not the script
	ctx, cancel := context.WithTimeoutCause(ctx, time.Duration(secs)*time.Second+h.o.Timeout,
		fmt.Errorf("%s: no answer within %ds and %s: %w", step, secs, h.o.Timeout, context.DeadlineExceeded))
	defer cancel()
	in := []byte(strconv.Itoa(secs) + "\n")
	cmd, m := h.command(script)
	switch {
	case m == sudoPassword:
		in = append(append(in, h.o.Password+"\n"...), dataMark+"\n"...)
	case len(stdin) == 0:
		// Nothing on stdin: sshd opens a channel's window only once
		// the command has started, and what the command reads would
		// wait a round trip for it. The deadline goes on the command
		// line, a number, and stdin is empty.
		cmd, in = "d="+strconv.Itoa(secs)+"\n"+wrapWith(sent().wrapArg, script, m), nil
	}
	in = append(in, stdin...)
	res, err := h.sess.Run(ctx, cmd, in)
	if err == nil {
		return res, nil
	}
	var re *transport.RemoteError
	se := &StepError{Step: step, Err: err}
	if errors.As(err, &re) && m != plain {
		if msg, ok := h.sudoFailed(ctx, re); ok {
			se.Step, se.msg, se.NothingChanged = "sudo", msg, true
			return res, se
		}
	}
	if errors.As(err, &re) {
		if s, ok := steps[re.ExitStatus]; ok {
			se.Step = s
		}
		// The command is fwpush's wrapper: the step names it better.
		se.msg = "host " + re.Host + ": " + re.Outcome()
		switch re.ExitStatus {
		case timedOut, killed:
			se.msg = "host " + re.Host + ": stopped on the host after " + strconv.Itoa(secs) + "s"
		}
		// The scripts exit 10 to 19 only before changing anything (16:
		// the sets the stage made are gone again; 18, 19: a package
		// apt could not install).
		se.NothingChanged = re.ExitStatus >= 10 && re.ExitStatus <= 19
	}
	return res, se
}

// How timeout(1) exits when it had to stop the script: 124 after SIGTERM,
// 128+9 when the script outlived that too.
const (
	timedOut = 124
	killed   = 137
)

// How a script becomes root.
type mode int

const (
	plain        mode = iota // as the login user
	sudo                     // sudo -n: sudo must not want a password
	sudoPassword             // sudo -S: the password on stdin
)

// dataMark ends the password on stdin. If sudo did not want the password,
// it left it on stdin: the script skips everything up to the mark, as
// root, and never shows it.
const dataMark = "@@fwpush:data@@"

// wrap is the command that runs script under its deadline, as m says: a
// constant wrapper that reads the deadline from stdin's first line and
// runs the script, quoted, under timeout(1) (and sudo), with the rest of
// stdin. Every command is fixed when fwpush is built; each is made when it
// is sent (not all of them as fwpush starts, which cost every command of
// fwpush a few milliseconds and a megabyte).
func wrap(script string, m mode) string { return wrapWith(sent().wrap, script, m) }

// wrapWith is wrap, with begin instead of wrap.sh: a step that sends
// nothing on stdin begins with wrapArg, "d=N" and a newline before it, the
// deadline, which it does not read (the sudo -S mode, which sends the
// password, has none).
func wrapWith(begin, script string, m mode) string {
	head := begin + "exec "
	switch m {
	case sudo:
		head += "sudo -n -- "
	case sudoPassword:
		head += "sudo -S -p '' -- "
		script = sent().skip + script
	}
	return head + `timeout -k 2 "$d" sh -c ` + quote(script) + ` fwpush`
}

// sudoFailed tells a failure of sudo itself (it ran nothing) from one of
// the script, by what sudo says, and words it for the operator.
func (h *Host) sudoFailed(ctx context.Context, re *transport.RemoteError) (string, bool) {
	stderr := string(re.Stderr)
	// Messages never hold "host NAME: ": the host's error names it once.
	user, host := cmpOr(h.o.User, "?"), cmpOr(h.o.Name, re.Host)
	noRights := func(why string) string {
		return fmt.Sprintf("user %s may not become root with sudo on host %s (%s): give the user sudo rights, or set become = \"none\" if it is root already", user, host, why)
	}
	switch {
	case re.ExitStatus == 127 && strings.Contains(stderr, "sudo"):
		return fmt.Sprintf("sudo is not installed on host %s, where user %s logs in and must become root with it: install sudo, or log in as root", host, user), true
	case strings.Contains(stderr, "must have a tty"):
		// Defaults requiretty: sudo runs nothing without a terminal.
		return fmt.Sprintf("sudo on host %s wants a terminal (Defaults requiretty in its sudoers), and fwpush asks for none: add \"Defaults:%s !requiretty\" to the host's sudoers", host, user), true
	case strings.Contains(stderr, "a password is required"), strings.Contains(stderr, "a terminal is required"),
		strings.Contains(stderr, "incorrect password"), strings.Contains(stderr, "Sorry, try again"):
		// sudo wants the password before it looks at the user's rights:
		// its words are the same for a user who has none. Ask.
		if why := h.sudoRights(ctx); why != "" {
			return noRights(why), true
		}
		if strings.Contains(stderr, "a password is required") || strings.Contains(stderr, "a terminal is required") {
			return fmt.Sprintf("sudo on host %s wants a password for user %s: give the password with --ask-become-pass or $FWPUSH_BECOME_PASS, or let the user run sudo without one (a NOPASSWD rule: see the README)", host, user), true
		}
		return fmt.Sprintf("sudo on host %s refused the password of user %s", host, user), true
	case strings.Contains(stderr, "not in the sudoers file"), strings.Contains(stderr, "may not run sudo"), strings.Contains(stderr, "is not allowed to execute"):
		return noRights(strings.TrimSpace(stderr)), true
	}
	return "", false
}

// sudoCheck asks sudo, without a password, whether the user may run it
// at all: sudo -v says "Sorry, user U may not run sudo on H." to a user
// with no rights, and to one with rights that it wants a password.
const sudoCheck = "sudo -n -v"

// sudoRights is what sudo says of the login user's rights when it says
// the user has none; "" otherwise, or when it cannot be asked.
func (h *Host) sudoRights(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	res, err := h.sess.Run(ctx, sudoCheck, nil)
	if err == nil {
		return ""
	}
	said := strings.TrimSpace(string(res.Stderr))
	var re *transport.RemoteError
	if errors.As(err, &re) {
		said = strings.TrimSpace(string(re.Stderr))
	}
	if strings.Contains(said, "may not run sudo") || strings.Contains(said, "not in the sudoers file") {
		return said
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// quote quotes s for sh: the one function through which anything passes
// that a command line holds, and it only ever holds fwpush's own scripts.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// frame is a script's stdin: a header line of fields (numbers and hex
// only: the scripts check), then the payloads, whose sizes the header
// gives, each followed by endMark.
func frame(fields []string, payloads ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(strings.Join(fields, " "))
	b.WriteByte('\n')
	for _, p := range payloads {
		b.Write(p)
		b.WriteString(endMark)
	}
	return b.Bytes()
}

func size(p []byte) string { return strconv.Itoa(len(p)) }

// Facts reads everything a run needs to decide about a host, in one round
// trip that changes nothing.
func (h *Host) Facts(ctx context.Context) (Facts, error) {
	// An apply, a settle or a persist may follow: the channel is
	// cheap, and a host that stays unchanged closes it unused. Nothing
	// starts on it: an unchanged host must not pay a process for it.
	h.ahead("")
	script := sent().facts
	if h.o.NFT {
		script = sent().nftFacts
	}
	res, err := h.run(ctx, "read live rules", script, h.o.Timeout, nil)
	if err != nil {
		return Facts{}, err
	}
	return parseFacts(string(res.Stdout)), nil
}

// Apply is what the apply step loads.
type Apply struct {
	// Token identifies the run (lowercase hex): a guard armed by another
	// run never touches this one's rules, and Confirm must name it.
	Token string
	// RollbackAfter is the guard's delay. sleep(1) takes whole seconds:
	// it is rounded up, never down, since a delay rounded to 0 would arm a
	// guard that fires at once, maybe before the apply has run, and leave
	// the new rules unguarded. RollbackSeconds says what the host got.
	RollbackAfter time.Duration
	// V4 and V6 are iptables-restore documents, loaded with --noflush.
	V4, V6 []byte
	// Sets change fwpush's sets in the same guarded apply; zero when
	// they stay as they are.
	Sets Sets
	// Lease is how long the host lock holds for this run if it never
	// confirms and no guard releases it: it must outlast the guard and
	// the confirm. LockWait is how long to wait for another run's lock.
	Lease, LockWait time.Duration
	// Who runs fwpush ("user@laptop pid 42"), for the message another run
	// gets while this one holds the host.
	Who string
	// NFT, when not nil, is the nft -f document that makes table inet
	// fwpush what the policy wants (or deletes it): the run's apply is
	// then nft's (see nft-runs.sh), and V4 and V6, each loaded only when
	// not empty, release the filter table (a host moving to nftables) or
	// take the policy (one moving back to iptables).
	NFT []byte
	// InstallNFT installs the nftables package first where nft is
	// missing, InstallIPSet the ipset package (before Sets are staged)
	// where ipset is.
	InstallNFT, InstallIPSet bool
	// History, Done and HistoryMax are the run's history line, as its
	// confirm sends them (see Persist): the host keeps them with the run,
	// so that a later run that settles this one, its fwpush gone, records
	// the line this run's confirm would have (see Settle).
	History    []byte
	Done       string
	HistoryMax int
	// Armed, when set, is told when the guard fires and the time it was
	// as it was armed, both by the host's clock, once the host says it is
	// armed: the guard's real deadline, which the caller's clock can only
	// guess.
	Armed func(GuardTimes)
}

// GuardTimes are a guard's deadline and the time it was when the host
// told it, both by the host's clock: Until, not the caller's clock, says
// how long the guard has left.
type GuardTimes struct {
	FireAt, Now time.Time
}

// Known reports whether the host told the times.
func (g GuardTimes) Known() bool { return !g.FireAt.IsZero() && !g.Now.IsZero() }

// Until is how long the guard had left when the host told it.
func (g GuardTimes) Until() time.Duration { return g.FireAt.Sub(g.Now) }

// guardTimes reads "FIRE NOW" (seconds since the epoch).
func guardTimes(fields []string) GuardTimes {
	if len(fields) != 2 {
		return GuardTimes{}
	}
	g := GuardTimes{FireAt: epoch(fields[0]), Now: epoch(fields[1])}
	if !g.Known() {
		return GuardTimes{}
	}
	return g
}

// Sets are the `ipset restore` documents of an apply that changes
// fwpush's sets, each run at its step (see change.SetDocs and
// scripts/ipsets.sh): Stage before the rules are tested, Swap by the apply
// before the rules (and again by a rollback, after the old rules), Clean
// once the old rules and sets are back, Drop once the rules are confirmed.
type Sets struct {
	Stage, Swap, Clean, Drop []byte
}

// RollbackSeconds is the guard's delay as the host sleeps it.
func RollbackSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// Apply stages the rules, has iptables test them, saves the current rules,
// arms the guard and starts the apply, detached from the session: the new
// rules may cut it. It returns once the apply has ended (or SECONDS have
// passed); Confirm, once a new connection made after that has got in,
// learns how it went. A *StepError with NothingChanged
// (the test failed, say) means the host is as it was; after any other error
// the guard may be armed, and only Confirm can tell.
func (h *Host) Apply(ctx context.Context, a Apply) error {
	if !isHex(a.Token) {
		return &StepError{Step: "apply", Err: fmt.Errorf("token %q is not hex", a.Token)}
	}
	if a.RollbackAfter <= 0 {
		return &StepError{Step: "apply", Err: errors.New("no rollback delay: the guard would restore the old rules at once")}
	}
	secs := strconv.Itoa(int(RollbackSeconds(a.RollbackAfter) / time.Second))
	lease := strconv.Itoa(int(RollbackSeconds(max(a.Lease, a.RollbackAfter)) / time.Second))
	wait := strconv.Itoa(int(RollbackSeconds(a.LockWait) / time.Second))
	st := a.Sets
	script, confirm, deadline := sent().apply, sent().confirm, h.o.Timeout
	hist, err := historyFields("apply", a.History, a.Done, a.HistoryMax)
	if err != nil {
		return err
	}
	line := historyLine(a.History)
	install := "0"
	if a.InstallIPSet {
		install, deadline = "1", deadline+InstallTimeout
	}
	in := frame([]string{a.Token, secs, lease, wait, size(a.V4), size(a.V6), size(st.Stage), size(st.Swap), size(st.Clean), size(st.Drop), install, hist[0], hist[1], hist[2], printable(a.Who)},
		a.V4, a.V6, st.Stage, st.Swap, st.Clean, st.Drop, line)
	if a.NFT != nil {
		install, deadline = "0", h.o.Timeout
		if a.InstallNFT {
			install, deadline = "1", deadline+InstallTimeout
		}
		script, confirm = sent().nftApply, sent().nftConfirm
		in = frame([]string{a.Token, secs, lease, wait, size(a.V4), size(a.V6), size(a.NFT), size(st.Stage), size(st.Swap), size(st.Clean), size(st.Drop), install, hist[0], hist[1], hist[2], printable(a.Who)},
			a.V4, a.V6, a.NFT, st.Stage, st.Swap, st.Clean, st.Drop, line)
	}
	// The confirm follows, over this session when the fleet proves
	// without logging in: it starts now, and waits for its stdin, which
	// fwpush sends only once the proof is made; a run whose apply is
	// nft's confirms with nft-store.sh (see Confirm). The script waits
	// for the lock, then for the apply, at most the guard's delay.
	h.ahead(confirm)
	h.nftRun = a.NFT != nil
	res, err := h.run(ctx, "apply", script, deadline+RollbackSeconds(a.LockWait)+RollbackSeconds(a.RollbackAfter), in)
	// The host says it armed the guard, and when it fires, before it
	// waits for the apply: a session lost after that still told it.
	armed, _, complete := strings.Cut(string(res.Stdout), "\n")
	f := strings.Fields(armed)
	ok := len(f) > 0 && f[0] == "armed"
	if g := guardTimes(f[min(len(f), 1):]); ok && complete && g.Known() && a.Armed != nil {
		a.Armed(g)
	}
	if err != nil {
		return err
	}
	if !ok {
		return &StepError{Step: "apply", Err: fmt.Errorf("unexpected answer %q", strings.TrimSpace(string(res.Stdout)))}
	}
	return nil
}

// Persist is what makes a policy survive a reboot. A nil document or an
// empty Digest leaves that file as it is.
type Persist struct {
	V4, V6 []byte // /etc/iptables/rules.v4 and rules.v6
	Sets   []byte // /etc/iptables/ipsets (written before the rules files)
	// SetsFirst, when set, is /etc/iptables/ipsets as written before the
	// rules files, Sets going in after them (see change.SetsFirst).
	SetsFirst []byte
	Digest    string // /var/lib/fwpush/applied: what fwpush applied last
	Install   bool   // install iptables-persistent (after the files)
	// InstallSets installs ipset-persistent too, which loads ipsets at
	// boot before the rules.
	InstallSets bool
	// History, when set, is the line the host appends to its history,
	// /var/lib/fwpush/history, once it knows how the change ended: the
	// body of a history.Entry (see its Body), which the host completes
	// with its time and the outcome. Done is the outcome once the step
	// succeeds (history.Applied or history.DriftRepaired); the host says
	// history.Failed or history.RolledBack itself when it learns that.
	History []byte
	Done    string
	// HistoryMax is the size past which the host rotates its history;
	// 0 is history.MaxBytes.
	HistoryMax int
	NFTFiles
}

// NFTFiles are the nftables backend's part of Persist (see
// nft-store.sh); when it writes or removes nothing, the step is
// iptables' own.
type NFTFiles struct {
	// NFT is /etc/fwpush/fwpush.nft.
	NFT []byte
	// Boot writes fwpush-nftables.service, which loads fwpush.nft at
	// boot, and enables it.
	Boot bool
	// RemoveNFT removes fwpush.nft and its unit (a host moving back to
	// iptables), RemoveIPT rules.v4 and rules.v6 (one moving to
	// nftables: its old filter table must not come back at boot).
	RemoveNFT, RemoveIPT bool
	// DropSets is the ipset restore document that destroys fwpush's
	// ipsets on a host moving to nftables; RemoveSets removes
	// /etc/iptables/ipsets there (fwpush's sets were all it held).
	DropSets   []byte
	RemoveSets bool
}

// nft reports whether p writes or removes a file of the nftables
// backend's.
func (p Persist) nft() bool {
	return p.NFT != nil || p.Boot || p.RemoveNFT || p.RemoveIPT || p.DropSets != nil || p.RemoveSets
}

// nftHeader is nft-store.sh's second header line: "NN FLAGS ND".
func (p Persist) nftHeader() []byte {
	flags := ""
	for _, f := range []struct {
		on bool
		c  string
	}{{p.Boot, "u"}, {p.RemoveNFT, "r"}, {p.RemoveIPT, "i"}, {p.RemoveSets, "s"}} {
		if f.on {
			flags += f.c
		}
	}
	return []byte(size(p.NFT) + " " + cmpOr(flags, "-") + " " + size(p.DropSets) + "\n")
}

// header is Persist's part of a header: the sizes of the files, the
// digest ("-" for none: it travels in the header, so it must be one
// word of letters, digits and ":._-"), whether to install, and the
// history line's size ("0" for none; the line, one line of printable
// ASCII, goes first among the payloads), its outcome and the history's
// bound, then the size of SetsFirst, whose payload follows the files'.
func (p Persist) header(step string) ([]string, error) {
	install := "0"
	switch {
	case p.InstallSets:
		install = "2"
	case p.Install:
		install = "1"
	}
	digest := strings.TrimSpace(p.Digest)
	if digest == "" {
		digest = "-"
	}
	if strings.Trim(digest, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:._-") != "" {
		return nil, &StepError{Step: step, Err: fmt.Errorf("digest %q is not one word of letters, digits and \":._-\"", p.Digest)}
	}
	hist, err := historyFields(step, p.History, p.Done, p.HistoryMax)
	if err != nil {
		return nil, err
	}
	return append([]string{size(p.V4), size(p.V6), size(p.Sets), digest, install}, append(hist[:], size(p.SetsFirst))...), nil
}

// historyFields are the header's fields of a history line (see
// Persist.History): its size ("0" for none), its outcome once the step
// succeeds ("-" for none) and the history's bound; its payload is
// historyLine.
func historyFields(step string, body []byte, done string, hmax int) ([3]string, error) {
	hn := "0"
	if len(body) > 0 {
		if done != history.Applied && done != history.DriftRepaired {
			return [3]string{}, &StepError{Step: step, Err: fmt.Errorf("history: outcome %q is not %s or %s", done, history.Applied, history.DriftRepaired)}
		}
		if printable(string(body)) != string(body) || body[0] != '"' || body[len(body)-1] != '}' {
			return [3]string{}, &StepError{Step: step, Err: fmt.Errorf("history: %q is not the body of a line (see history.Entry.Body)", body)}
		}
		hn = strconv.Itoa(len(body) + 1)
	} else {
		done = "-"
	}
	if hmax <= 0 {
		hmax = history.MaxBytes
	}
	return [3]string{hn, done, strconv.Itoa(hmax)}, nil
}

// historyLine is a history line's payload: its body and a newline, or
// nothing for none.
func historyLine(body []byte) []byte {
	if len(body) == 0 {
		return nil
	}
	return append(append([]byte(nil), body...), '\n')
}

// frame is the step's stdin: head's fields, then the history line and
// the files; with nft, the nftables part follows, its own header line
// and its file (nft-store.sh).
func (p Persist) frame(head []string, nft bool) []byte {
	in := frame(head, historyLine(p.History), p.V4, p.V6, p.Sets, p.SetsFirst)
	if nft {
		in = append(append(in, p.nftHeader()...), p.NFT...)
		in = append(in, endMark...)
		in = append(append(in, p.DropSets...), endMark...)
	}
	return in
}

// InstallTime is how long persisting may take beyond the usual: apt's
// time when it installs.
func (p Persist) InstallTime() time.Duration {
	if p.Install || p.InstallSets {
		return InstallTimeout
	}
	return 0
}

// Persist writes the files p names, atomically, and installs
// iptables-persistent if asked: for a host whose live rules already match.
func (h *Host) Persist(ctx context.Context, p Persist) error {
	header, err := p.header("persist")
	if err != nil {
		return err
	}
	script := sent().persist
	if p.nft() {
		script = sent().nftPersist
	}
	res, err := h.run(ctx, "persist", script, h.o.Timeout+p.InstallTime(), p.frame(header, p.nft()))
	if err != nil {
		return err
	}
	if out := strings.TrimSpace(string(res.Stdout)); out != "persisted" {
		return &StepError{Step: "persist", Err: fmt.Errorf("unexpected answer %q", out)}
	}
	return nil
}

// Outcome is how an apply ended, as the host tells it.
type Outcome string

// The outcomes of Confirm.
const (
	// Confirmed: the new rules are in place and the guard is disarmed.
	Confirmed Outcome = "confirmed"
	// Pending: the apply had not finished within Confirm.Wait.
	Pending Outcome = "pending"
	// ApplyFailed: iptables-restore failed; the old rules are back and the
	// guard is disarmed. Confirmation.Log holds the apply's output.
	ApplyFailed Outcome = "failed"
	// RolledBack: the guard fired first and restores the old rules, or
	// another run that took this one for gone restored them
	// (Confirmation.By names it).
	RolledBack Outcome = "rolledback"
	// Superseded: another run has taken the host over since.
	Superseded Outcome = "superseded"
)

// Confirmation is Confirm's answer.
type Confirmation struct {
	Outcome Outcome
	Log     string // the apply's output, for ApplyFailed
	// By is who decided, when another run of fwpush did ("user@laptop pid
	// 42", as it named itself): it took this run for gone and rolled its
	// apply back (RolledBack) or kept it (Confirmed), or it applied since
	// (Superseded). "" when this run or its guard decided.
	By string
	// Guard is when the guard fires (fired, for RolledBack) by the host's
	// clock, as Pending and RolledBack tell it.
	Guard GuardTimes
}

// Confirm asks the host how the apply of run Token went, waiting on the
// host up to Wait for it to finish, and, once confirmed, persists in the
// same round trip. Run it only once a new connection made after the apply
// has got in (a fresh session, or a knock: see runner), since that is the
// proof that the new rules let fwpush in. A persistence step that fails
// returns Confirmed together with its *StepError.
type Confirm struct {
	Token string
	Wait  time.Duration
	Persist
}

// Confirm implements the confirm step; see the Confirm type.
func (h *Host) Confirm(ctx context.Context, c Confirm) (Confirmation, error) {
	if !isHex(c.Token) {
		return Confirmation{}, &StepError{Step: "confirm", Err: fmt.Errorf("token %q is not hex", c.Token)}
	}
	header, err := c.header("confirm")
	if err != nil {
		return Confirmation{}, err
	}
	wait := strconv.FormatInt(max(c.Wait, 0).Milliseconds(), 10)
	// A run whose apply was nft's confirms with nft's script, the one
	// Apply started ahead on this session, even with no file of nft's to
	// write: nft-store.sh with none is store.sh.
	nft := c.nft() || h.nftRun
	script := sent().confirm
	if nft {
		script = sent().nftConfirm
	}
	in := c.frame(append([]string{c.Token, wait}, header...), nft)
	res, err := h.run(ctx, "confirm", script, h.o.Timeout+max(c.Wait, 0)+c.InstallTime(), in)
	first, rest, _ := strings.Cut(string(res.Stdout), "\n")
	conf := Confirmation{Outcome: Outcome(strings.TrimSpace(first))}
	if conf.Outcome != ApplyFailed {
		rest = conf.details(rest)
	}
	switch conf.Outcome {
	case Confirmed:
		if err == nil && strings.TrimSpace(rest) != "persisted" {
			err = &StepError{Step: "persist", Err: fmt.Errorf("unexpected answer %q", strings.TrimSpace(rest))}
		}
		return conf, err
	case ApplyFailed:
		conf.Log = strings.TrimSpace(rest)
	case Pending, RolledBack, Superseded:
	default:
		if err == nil {
			err = &StepError{Step: "confirm", Err: fmt.Errorf("unexpected answer %q", strings.TrimSpace(string(res.Stdout)))}
		}
		return Confirmation{}, err
	}
	return conf, err
}

// details reads the lines that follow the outcome and say who decided and
// when ("by WHO", "guard FIRE NOW"), and returns the lines after them.
func (c *Confirmation) details(rest string) string {
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		switch key, v, _ := strings.Cut(line, " "); key {
		case "by":
			c.By = v
		case "guard":
			c.Guard = guardTimes(strings.Fields(v))
		default:
			return rest
		}
		rest = after
	}
	return rest
}

// printable is s with what is not printable ASCII left out: it goes at
// the end of a header line, for messages.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// History reads the host's history (see Persist.History): the lines of
// /var/lib/fwpush/history.1, then of /var/lib/fwpush/history, as they
// are; nothing for a host fwpush never changed. One round trip that
// changes nothing.
func (h *Host) History(ctx context.Context) ([]byte, error) {
	res, err := h.run(ctx, "read history", sent().history, h.o.Timeout, nil)
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

// Settle decides the fate of an earlier run's apply that was never
// confirmed (its fwpush is gone): keep its rules and disarm its guard, or
// restore the old rules now. The outcome names Options.Who, for that run
// should it come back (see Confirmation.By). The fate it decides goes
// into the host's history as that run's line (Apply.History), which its
// confirm would have written: its own outcome for rules kept, rolled_back
// for the old rules restored. It returns the outcome: Confirmed (kept, or
// confirmed by its own run after all), RolledBack, ApplyFailed, or
// Superseded when nothing of that run is left, or a newer run applied
// since (its guard stood down).
func (h *Host) Settle(ctx context.Context, token string, keep bool) (Outcome, error) {
	if !isHex(token) {
		return "", &StepError{Step: "settle", Err: fmt.Errorf("token %q is not hex", token)}
	}
	k := "0"
	if keep {
		k = "1"
	}
	res, err := h.run(ctx, "settle an earlier run", sent().settle, h.o.Timeout, frame([]string{token, k, printable(h.o.Who)}))
	if err != nil {
		return "", err
	}
	switch out := strings.TrimSpace(string(res.Stdout)); out {
	case "kept", "confirmed":
		return Confirmed, nil
	case "failed":
		return ApplyFailed, nil
	case "rolledback":
		return RolledBack, nil
	case "gone", "superseded":
		return Superseded, nil
	default:
		return "", &StepError{Step: "settle an earlier run", Err: fmt.Errorf("unexpected answer %q", out)}
	}
}
