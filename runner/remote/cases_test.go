package remote

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// TestCases runs the scripts through every case of remotetest on a stub
// host: each step's answer, the host after, nothing left running on it
// but the guards of runs nobody decided, the history it keeps (see
// caseHistories), and what afterCase says of some. One run of each case
// proves all of it: the scripts' processes are most of this package's
// time.
func TestCases(t *testing.T) {
	t.Parallel()
	for name := range caseHistories {
		caseNamed(t, name)
	}
	for name := range afterCase {
		caseNamed(t, name)
	}
	for _, c := range remotetest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			s := newStubHost(t, c.Host)
			before := time.Now().Add(-time.Second)
			runCase(t, s, c)
			checkHistory(t, s, c.Name, before)
			if check := afterCase[c.Name]; check != nil {
				check(t, s)
			}
		})
	}
}

// afterCase holds what some cases prove of the host they leave, besides
// what remotetest checks, by the stub's record of the calls.
var afterCase = map[string]func(*testing.T, *stubHost){
	"the apply fails half-way: IPv4 loaded, IPv6 fails, the host as it was": applyFailedHalfWay,
	"first run": installedAfterTheFiles,
}

// runCase takes stub host s through the steps of c (see remotetest.Run),
// then waits until nothing runs on it but the guards that may be armed.
func runCase(t *testing.T, s *stubHost, c remotetest.Case) {
	t.Helper()
	h := New(s, Options{Timeout: 10 * time.Second, Name: "stub", Who: remotetest.Settler})
	keep := remotetest.Run(t, remotetest.Driver{
		Facts: h.Facts,
		Apply: func(ctx context.Context, st remotetest.Step) error {
			var g GuardTimes
			err := h.Apply(ctx, Apply{Token: st.Token, RollbackAfter: remotetest.RollbackAfter, V4: st.V4, V6: st.V6,
				Lease: remotetest.Lease, LockWait: st.LockWaitOr(), Who: remotetest.Who,
				Armed:   func(t GuardTimes) { g = t },
				History: historyBody(st.Token), Done: history.Applied})
			// The host tells its guard's time: the report gives it.
			if err == nil && g.Until() != remotetest.RollbackAfter {
				t.Errorf("apply %s: the host says its guard fires in %s, want %s", st.Token, g.Until(), remotetest.RollbackAfter)
			}
			return err
		},
		ConfirmBy: func(ctx context.Context, st remotetest.Step) (string, string, string, error) {
			conf, err := h.Confirm(ctx, Confirm{Token: st.Token, Wait: remotetest.ConfirmWait, Persist: persistOf(st)})
			if (conf.Outcome == Pending || conf.Outcome == RolledBack) && !conf.Guard.Known() {
				t.Errorf("confirm %s: %s without the guard's time", st.Token, conf.Outcome)
			}
			return string(conf.Outcome), conf.Log, conf.By, err
		},
		Persist: func(ctx context.Context, st remotetest.Step) error { return h.Persist(ctx, persistOf(st)) },
		Settle: func(ctx context.Context, st remotetest.Step) (string, error) {
			o, err := h.Settle(ctx, st.Token, st.Keep)
			return string(o), err
		},
		FireGuard: s.fireGuard,
		EndLease:  s.endLease,
		Failed: func(err error) (string, bool, bool) {
			var se *StepError
			if !errors.As(err, &se) {
				return "", false, false
			}
			return se.Step, se.NothingChanged, true
		},
		State: s.state,
	}, c)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := s.running(keep...)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("still running on the host:\n%s", strings.Join(left, "\n"))
			break
		}
	}
}

// persistOf is what a step of a case persists, with a line for the
// history: every case runs the history's branches too (see
// caseHistories).
func persistOf(st remotetest.Step) Persist {
	return Persist{V4: st.V4, V6: st.V6, Digest: st.Digest, Install: st.Install,
		History: historyBody(st.Token), Done: history.Applied}
}

// The apply that fails half-way loaded the new IPv4 rules, failed on IPv6,
// and put both old tables back: the host is as it was because the old
// rules went back, not because nothing was loaded.
func applyFailedHalfWay(t *testing.T, s *stubHost) {
	var restores []string
	for _, call := range s.calls() {
		if strings.HasPrefix(call, "iptables-restore") || strings.HasPrefix(call, "ip6tables-restore") {
			restores = append(restores, call)
		}
	}
	want := []string{
		"iptables-restore -w --noflush --test", "ip6tables-restore -w --noflush --test", // the test
		"iptables-restore -w --noflush", "ip6tables-restore -w --noflush", // the apply: IPv6 fails
		"iptables-restore -w", "ip6tables-restore -w", // the old rules back
	}
	if diff := cmp.Diff(want, restores); diff != "" {
		t.Errorf("iptables-restore runs (-want +got):\n%s", diff)
	}
}

// Installing iptables-persistent starts netfilter-persistent, which loads
// the rules files as they are on disk: the files are written before apt
// runs, without questions, and the record of what was applied after it,
// so that a run that fails half-way is not taken for done.
func installedAfterTheFiles(t *testing.T, s *stubHost) {
	var apt []string
	for _, call := range s.calls() {
		if strings.HasPrefix(call, "apt-get") || strings.HasPrefix(call, "debconf") {
			apt = append(apt, call)
		}
	}
	want := []string{
		"debconf-set-selections",
		"apt-get -o DPkg::Lock::Timeout=300 -qq update",
		"apt-get -o DPkg::Lock::Timeout=300 -qq -y install iptables-persistent",
	}
	if diff := cmp.Diff(want, apt); diff != "" {
		t.Errorf("apt (-want +got):\n%s", diff)
	}
	if v4, v6 := s.read("state/at-install.rules.v4"), s.read("state/at-install.rules.v6"); v4 != remotetest.A4 || v6 != remotetest.A6 {
		t.Errorf("at the install, rules.v4 and rules.v6 were:\n%s%s\nwant the policy", v4, v6)
	}
	if s.read("state/at-install.applied") != "" {
		t.Error("the record of what was applied was there before the install")
	}
}

// A run that finds the host locked waits, then fails naming who holds it.
func TestLockHeldSaysWho(t *testing.T) {
	t.Parallel()
	c := caseNamed(t, "another run holds the host")
	s := newStubHost(t, c.Host)
	err := New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: remotetest.RunB, RollbackAfter: time.Minute, V4: []byte(remotetest.B4), V6: []byte(remotetest.B6), LockWait: time.Second})
	if err == nil || !strings.Contains(err.Error(), "another run of fwpush holds this host: op@laptop pid 42") {
		t.Errorf("got %v, want the lock's holder named", err)
	}
	if left, _ := filepath.Glob(s.path("run/fwpush/runs/*")); len(left) > 0 {
		t.Errorf("the run that could not lock left %v", left)
	}
}

// A run waiting for the host lock wakes when the holder lets it go, not
// when its wait ends: it sleeps once, however long the wait.
func TestLockWaitWakesOnRelease(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Persistent: true})
	h := New(s, Options{Timeout: 10 * time.Second})
	if err := h.Apply(t.Context(), Apply{Token: remotetest.RunA, RollbackAfter: time.Minute, V4: []byte(remotetest.B4), V6: []byte(remotetest.B6), Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// Run B waits up to ten minutes; the test would fail on its deadline
	// long before.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		applied <- New(s, Options{Timeout: 10 * time.Second}).Apply(ctx, Apply{Token: remotetest.RunB, RollbackAfter: time.Minute, V4: []byte(remotetest.C4), V6: []byte(remotetest.A6), LockWait: 10 * time.Minute, Lease: time.Hour})
	}()
	// Once B waits (it sleeps, besides the guard's sleep of a minute), A
	// confirms.
	for !slices.ContainsFunc(s.calls(), func(c string) bool { return strings.HasPrefix(c, "sleep ") && c != "sleep 60" }) {
		select {
		case err := <-applied:
			t.Fatalf("run B did not wait: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: time.Second}); err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm A: %+v, %v", conf, err)
	}
	if err := <-applied; err != nil {
		t.Fatalf("run B: %v", err)
	}
	if conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunB, Wait: time.Second}); err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm B: %+v, %v", conf, err)
	}
	var sleeps []string
	for _, call := range s.calls() {
		if strings.HasPrefix(call, "sleep") {
			sleeps = append(sleeps, call)
		}
	}
	// The two guards' sleeps, and one of run B's wait.
	if len(sleeps) != 3 {
		t.Errorf("sleeps: %q, want the two guards' and one for the wait", sleeps)
	}
	if got := s.state().V4; got != remotetest.C4 {
		t.Errorf("live rules:\n%s\nwant run B's", got)
	}
}

// A full disk fails the persist, and leaves no temporary file behind (it
// used to leave an empty .rules.v4.fwpush), nor a half-written rules.v4.
func TestPersistFullDisk(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.B4, Persistent: true})
	// Whatever is written to the temporary file goes to /dev/full.
	if err := os.Symlink("/dev/full", s.path("etc/iptables/.rules.v4.fwpush")); err != nil {
		t.Fatal(err)
	}
	err := New(s, Options{Timeout: 10 * time.Second}).Persist(t.Context(), Persist{V4: []byte(remotetest.A4), V6: []byte(remotetest.A6), Digest: remotetest.DigestA})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "persist rules.v4" {
		t.Fatalf("got %v, want persist rules.v4 to fail", err)
	}
	entries, err := os.ReadDir(s.path("etc/iptables"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"rules.v4"}) {
		t.Errorf("/etc/iptables holds %v, want rules.v4 alone", names)
	}
	if got := s.state(); got.Rules4 != remotetest.B4 || got.Rules6 != "" || got.Applied != "" {
		t.Errorf("after the failure: rules.v4 %q, rules.v6 %q, applied %q; want them as they were", got.Rules4, got.Rules6, got.Applied)
	}
}

// Exactly one decides a run, and a decided directory, as an earlier fwpush
// made it, counts.
func TestDecideOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "old", "decided"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := sent().guard[:strings.Index(sent().guard, "set -u")] + `
R=$1/new; mkdir "$R"
decide && echo first; decide || echo second
R=$1/old; decide || echo old`
	out, err := exec.Command("dash", "-c", script, "decide", dir).CombinedOutput()
	if err != nil || string(out) != "first\nsecond\nold\n" {
		t.Errorf("got %q, %v; want first, second, old", out, err)
	}
}

// A guard that decides while the host is read (its time is up: it will
// restore the old rules) after the read waited for rollbacks in progress
// and before it lists the guards must be listed still: the rules read are
// the ones it is about to replace, and a run that found neither would
// take them for the live ones, persist them, and lose to the rollback.
// Here the host's iptables-save is the moment the guard decides.
func TestFactsListAGuardThatDecidesMeanwhile(t *testing.T) {
	t.Parallel()
	s, h := appliedB(t)
	run := remotetest.RunB
	s.script("usr/sbin/iptables-save", `: > "$FWPUSH_TEST_ROOT/run/fwpush/runs/`+run+`/decided"
`+saveStub)
	f, err := h.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Guards) != 1 || f.Guards[0].Token != run || f.Guards[0].FireAt.IsZero() {
		t.Errorf("guards %+v with the rules it is about to replace live, want run %s's listed", f.Guards, run)
	}
}

// appliedB is a stub host at policy A, persisted, on which run
// remotetest.RunB has applied policy B, its guard armed, not confirmed.
func appliedB(t *testing.T) (*stubHost, *Host) {
	t.Helper()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.A4, Rules6: remotetest.A6, Applied: remotetest.DigestA, Persistent: true})
	h := New(s, Options{Timeout: 10 * time.Second})
	if err := h.Apply(t.Context(), Apply{Token: remotetest.RunB, RollbackAfter: time.Minute, V4: []byte(remotetest.B4), V6: []byte(remotetest.B6), Lease: time.Hour, LockWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	return s, h
}
