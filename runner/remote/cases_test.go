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

	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// TestCases runs the scripts through every case of remotetest on a stub
// host: each step's answer, the host after, and nothing left running on it
// but the guards of runs nobody decided.
func TestCases(t *testing.T) {
	for _, c := range remotetest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			s := newStubHost(t, c.Host)
			runCase(t, s, c)
		})
	}
}

// runCase takes stub host s through the steps of c and checks the host
// after; it returns the runs whose guard may still be armed.
func runCase(t *testing.T, s *stubHost, c remotetest.Case) {
	t.Helper()
	h := New(s, Options{Timeout: 10 * time.Second, Name: "stub", Who: remotetest.Settler})
	armed := map[string]bool{}
	for i, st := range c.Steps {
		what := string(st.Do) + " " + st.Token
		if i := strings.Index(what, " 0"); i > 0 {
			what = what[:i] + " run " + what[i+1:i+3]
		}
		ctx := t.Context()
		var err error
		var outcome string
		switch st.Do {
		case remotetest.Facts:
			var f Facts
			f, err = h.Facts(ctx)
			if err == nil && st.Read != nil {
				if diff := cmp.Diff(*st.Read, readOf(f)); diff != "" {
					t.Errorf("step %d, %s: read (-want +got):\n%s", i+1, what, diff)
				}
			}
		case remotetest.Apply:
			var g GuardTimes
			err = h.Apply(ctx, Apply{Token: st.Token, RollbackAfter: time.Minute, V4: st.V4, V6: st.V6,
				Lease: time.Hour, LockWait: cmpOr2(st.LockWait, time.Second), Who: remotetest.Applier,
				Armed: func(t GuardTimes) { g = t }})
			if err == nil && g.Until() != time.Minute {
				t.Errorf("step %d, %s: the host says its guard fires in %s, want 1m0s", i+1, what, g.Until())
			}
			armed[st.Token] = err == nil
		case remotetest.Confirm:
			var conf Confirmation
			conf, err = h.Confirm(ctx, Confirm{Token: st.Token, Wait: 5 * time.Second, Persist: persistOf(st)})
			outcome = string(conf.Outcome)
			if conf.By != st.By {
				t.Errorf("step %d, %s: decided by %q, want %q", i+1, what, conf.By, st.By)
			}
			if (conf.Outcome == Pending || conf.Outcome == RolledBack) && !conf.Guard.Known() {
				t.Errorf("step %d, %s: %s without the guard's time", i+1, what, conf.Outcome)
			}
			if conf.Outcome == ApplyFailed && !strings.Contains(conf.Log, "line") {
				t.Errorf("step %d, %s: failed, and the log does not say why: %q", i+1, what, conf.Log)
			}
			armed[st.Token] = armed[st.Token] && (conf.Outcome == Pending || conf.Outcome == Superseded)
		case remotetest.Persist:
			err = h.Persist(ctx, persistOf(st))
		case remotetest.Settle:
			var o Outcome
			o, err = h.Settle(ctx, st.Token, st.Keep)
			outcome = string(o)
			armed[st.Token] = false
		case remotetest.GuardFires:
			s.fireGuard(st.Token)
			armed[st.Token] = false
		case remotetest.LeaseEnds:
			s.endLease(st.Token)
		default:
			t.Fatalf("step %d: %q?", i+1, st.Do)
		}
		if outcome != st.Outcome {
			t.Errorf("step %d, %s: outcome %q, want %q", i+1, what, outcome, st.Outcome)
		}
		var se *StepError
		switch {
		case st.Fails == "" && err != nil:
			t.Fatalf("step %d, %s: %v", i+1, what, err)
		case st.Fails != "" && !errors.As(err, &se):
			t.Fatalf("step %d, %s: %v, want a failure of %q", i+1, what, err, st.Fails)
		case st.Fails != "" && (se.Step != st.Fails || se.NothingChanged != st.NothingChanged):
			t.Errorf("step %d, %s: failed %q (nothing changed: %v): %v; want %q (%v)", i+1, what, se.Step, se.NothingChanged, err, st.Fails, st.NothingChanged)
		}
	}
	if diff := cmp.Diff(c.End, s.state()); diff != "" {
		t.Errorf("the host after (-want +got):\n%s", diff)
	}
	var keep []string
	for token, a := range armed {
		if a {
			keep = append(keep, token)
		}
	}
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

func cmpOr2(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func persistOf(st remotetest.Step) Persist {
	return Persist{V4: st.V4, V6: st.V6, Digest: st.Digest, Install: st.Install}
}

// readOf is what remotetest compares of f: the tables without
// iptables-save's comments.
func readOf(f Facts) remotetest.Read {
	r := remotetest.Read{
		V4: uncommented(f.V4), V6: uncommented(f.V6), Rules4: f.Persisted4, Rules6: f.Persisted6,
		Persistent: f.Persistent,
	}
	if f.Applied != "" {
		r.Applied = f.Applied + "\n"
	}
	if f.Lock != nil {
		r.Lock = f.Lock.Token
	}
	for _, g := range f.Guards {
		r.Guards = append(r.Guards, g.Token+" "+g.Status)
	}
	return r
}

func uncommented(save string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(save, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// The apply that fails half-way loaded the new IPv4 rules, failed on IPv6,
// and put both old tables back: the host is as it was because the old
// rules went back, not because nothing was loaded.
func TestApplyFailsHalfWay(t *testing.T) {
	c := caseNamed(t, "the apply fails half-way: IPv4 loaded, IPv6 fails, the host as it was")
	s := newStubHost(t, c.Host)
	runCase(t, s, c)
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

// A run that finds the host locked waits, then fails naming who holds it.
func TestLockHeldSaysWho(t *testing.T) {
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
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "old", "decided"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := sent.guard[:strings.Index(sent.guard, "set -u")] + `
R=$1/new; mkdir "$R"
decide && echo first; decide || echo second
R=$1/old; decide || echo old`
	out, err := exec.Command("dash", "-c", script, "decide", dir).CombinedOutput()
	if err != nil || string(out) != "first\nsecond\nold\n" {
		t.Errorf("got %q, %v; want first, second, old", out, err)
	}
}
