package remote

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// historyBody is the history line a case's run sends: its token stands
// for the policy, to tell the runs' lines apart.
func historyBody(token string) []byte {
	return history.Run{Who: "op@stub", Version: "test", Inventory: "sha256:1234"}.Entry("stub", "sha256:"+token, 2, 1).Body()
}

// historyOf reads stub host s's history: its entries, history.1's first.
func historyOf(t *testing.T, s *stubHost) []history.Entry {
	t.Helper()
	data := s.read("var/lib/fwpush/history.1") + s.read("var/lib/fwpush/history")
	entries, bad := history.Parse("", []byte(data))
	if bad > 0 {
		t.Errorf("%d lines of the history do not parse:\n%s", bad, data)
	}
	return entries
}

// outcomes says each entry as "OUTCOME TOKEN".
func outcomes(entries []history.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Outcome+" "+strings.TrimPrefix(e.Policy, "sha256:"))
	}
	return out
}

// caseHistories is the history each case of remotetest leaves on the
// host (TestCases checks it): every change a case makes leaves one line,
// with the outcome the host learned; a host left as it was (unchanged,
// refused, locked) none. A settle that decides an earlier run's fate
// writes that run's line (the one its apply kept), which its own confirm,
// come back, does not write again: an apply rolled back by a settle, or
// kept, is in the history even when its fwpush never comes back.
var caseHistories = func() map[string][]string {
	A, B := remotetest.RunA, remotetest.RunB
	return map[string][]string{
		"first run":                             {"applied " + A},
		"unchanged":                             nil,
		"changed":                               {"applied " + B},
		"drift: the live rules changed by hand": {"applied " + A},
		"persisted files only":                  {"applied "},
		"the guard fires: SSH cut, the old rules back":                              {"rolled_back " + B},
		"the guard of a first run fires: an open table":                             {"rolled_back " + A},
		"iptables refuses the new rules: nothing changes":                           nil,
		"the apply fails half-way: IPv4 loaded, IPv6 fails, the host as it was":     {"failed " + B},
		"another run holds the host":                                                nil,
		"superseded: another run settled this one and applied":                      {"rolled_back " + A, "applied " + B},
		"an earlier run's apply kept: its rules are the policy":                     {"applied " + A, "applied "},
		"a guard whose run is no longer the latest stands down":                     {"applied " + B},
		"a guard that stands down closes its run as superseded":                     {"applied " + B},
		"the lease of another run ended: its lock is taken over":                    {"applied " + B},
		"a confirm whose answer was lost: confirmed again, and persisted":           {"applied " + B},
		"nothing left of a run to settle":                                           nil,
		"a run's guard decided before the settle: its old rules stay back":          nil,
		"a run taken for gone comes back: another run rolled it back, and says who": {"rolled_back " + A},
		"a run taken for gone comes back: another run kept its apply, and says who": {"applied " + A},
	}
}()

// checkHistory fails t unless stub host s, through case name since
// before, keeps the history caseHistories says, each line the run's.
func checkHistory(t *testing.T, s *stubHost, name string, before time.Time) {
	t.Helper()
	want, ok := caseHistories[name]
	if !ok {
		t.Errorf("case %q: what does its history hold? Say it in caseHistories", name)
		return
	}
	entries := historyOf(t, s)
	if diff := cmp.Diff(want, outcomes(entries)); diff != "" {
		t.Errorf("the host's history (-want +got):\n%s", diff)
	}
	for _, e := range entries {
		if e.Time.Before(before) || e.Time.After(time.Now().Add(time.Second)) || e.Host != "stub" || e.Who != "op@stub" || e.Added != 2 || e.Removed != 1 {
			t.Errorf("entry %+v: want the host's time now, and the line the run sent", e)
		}
	}
	if fi, err := os.Stat(s.path("var/lib/fwpush/history")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %04o, want 0600: only root reads it", fi.Mode().Perm())
	}
}

// A confirm asked again, after its answer was lost, records nothing more;
// a drift repaired says so; a step without a line records nothing.
func TestHistoryOnce(t *testing.T) {
	t.Parallel()
	s, h := appliedB(t)
	run := remotetest.RunB
	c := Confirm{Token: run, Wait: 5 * time.Second, Persist: Persist{V4: []byte(remotetest.B4), V6: []byte(remotetest.B6), Digest: remotetest.DigestB,
		History: historyBody(run), Done: history.DriftRepaired}}
	for range 2 {
		if conf, err := h.Confirm(t.Context(), c); err != nil || conf.Outcome != Confirmed {
			t.Fatalf("confirm: %+v, %v", conf, err)
		}
	}
	if diff := cmp.Diff([]string{"drift_repaired " + run}, outcomes(historyOf(t, s))); diff != "" {
		t.Errorf("the history (-want +got):\n%s", diff)
	}
	if err := h.Persist(t.Context(), Persist{V4: []byte(remotetest.B4)}); err != nil {
		t.Fatal(err)
	}
	if n := len(historyOf(t, s)); n != 1 {
		t.Errorf("a persist without a line: %d entries, want the 1 before", n)
	}
}

// A persist that fails is recorded as failed.
func TestHistoryPersistFails(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.B4, Persistent: true})
	if err := os.Symlink("/dev/full", s.path("etc/iptables/.rules.v4.fwpush")); err != nil {
		t.Fatal(err)
	}
	err := New(s, Options{Timeout: 10 * time.Second}).Persist(t.Context(), Persist{V4: []byte(remotetest.A4), Digest: remotetest.DigestA,
		History: historyBody(remotetest.RunA), Done: history.Applied})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "persist rules.v4" {
		t.Fatalf("got %v, want persist rules.v4 to fail", err)
	}
	if diff := cmp.Diff([]string{"failed " + remotetest.RunA}, outcomes(historyOf(t, s))); diff != "" {
		t.Errorf("the history (-want +got):\n%s", diff)
	}
}

// Past its bound the history moves to history.1, replacing the one
// before, and starts again; the lines before the bound stay.
func TestHistoryRotates(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.A4, Rules6: remotetest.A6, Persistent: true})
	h := New(s, Options{Timeout: 10 * time.Second})
	body := historyBody(remotetest.RunA)
	line := len(body) + len(`{"time":"2026-12-06T17:00:00Z","outcome":"applied",`) + 1
	max := 3*line - 1 // two lines fit; a third makes it rotate
	s.write("var/lib/fwpush/history.1", "old\n")
	var sizes [][2]int
	for range 5 {
		if err := h.Persist(t.Context(), Persist{History: body, Done: history.Applied, HistoryMax: max}); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, [2]int{len(s.read("var/lib/fwpush/history.1")), len(s.read("var/lib/fwpush/history"))})
	}
	want := [][2]int{{4, line}, {4, 2 * line}, {4, 3 * line}, {3 * line, line}, {3 * line, 2 * line}}
	if diff := cmp.Diff(want, sizes); diff != "" {
		t.Errorf("sizes of history.1 and history after each change (-want +got):\n%s", diff)
	}
	if n := len(historyOf(t, s)); n != 5 {
		t.Errorf("%d entries, want 5: the 3 rotated and the 2 since", n)
	}
}

// History reads history.1 then history, and nothing from a host fwpush
// never changed.
func TestHistoryRead(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{})
	h := New(s, Options{Timeout: 10 * time.Second})
	if data, err := h.History(t.Context()); err != nil || len(data) != 0 {
		t.Errorf("a host without history: %q, %v", data, err)
	}
	s.write("var/lib/fwpush/history", "b\n")
	if data, err := h.History(t.Context()); err != nil || string(data) != "b\n" {
		t.Errorf("got %q, %v", data, err)
	}
	s.write("var/lib/fwpush/history.1", "a\n")
	if data, err := h.History(t.Context()); err != nil || string(data) != "a\nb\n" {
		t.Errorf("got %q, %v", data, err)
	}
}

// A line that is not one, or an outcome the host does not know, is never
// sent; the host refuses a line whose size is not the header's.
func TestHistoryRefused(t *testing.T) {
	t.Parallel()
	for _, p := range []Persist{
		{History: []byte(`"a":1}`), Done: "rolled_back"},
		{History: []byte(`"a":1}`)},
		{History: []byte("\"a\":\"\n\"}")},
		{History: []byte(`{"a":1}`), Done: history.Applied},
	} {
		r := &recorder{}
		if err := newHost(r).Persist(t.Context(), p); err == nil || len(r.calls) > 0 {
			t.Errorf("%+v: sent (%v)", p, err)
		}
	}
	s := newStubHost(t, remotetest.Host{})
	for _, in := range []string{
		"0 0 - 0 9 applied 100\n\"a\":1}\n@@fwpush:end@@\n@@fwpush:end@@\n@@fwpush:end@@\n",
		"0 0 - 0 7 rolled_back 100\n\"a\":1}\n@@fwpush:end@@\n@@fwpush:end@@\n@@fwpush:end@@\n",
		"0 0 - 0 7 applied 100\nnot-json\n@@fwpush:end@@\n@@fwpush:end@@\n@@fwpush:end@@\n",
	} {
		_, err := s.Run(t.Context(), wrap(sent().persist, plain), []byte("5\n"+in))
		if err == nil {
			t.Errorf("persist.sh took %q", in)
		}
	}
	if data := s.read("var/lib/fwpush/history"); data != "" {
		t.Errorf("history written: %q", data)
	}
}

// The size of the history is counted (wc) only when something else wrote
// it since fwpush last did: history.size, which fwpush keeps, is not
// believed once the history is newer.
func TestHistorySizeKept(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.A4, Rules6: remotetest.A6, Persistent: true})
	h := New(s, Options{Timeout: 10 * time.Second})
	body := historyBody(remotetest.RunA)
	persist := func() {
		t.Helper()
		if err := h.Persist(t.Context(), Persist{History: body, Done: history.Applied, HistoryMax: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	persist()
	if got, want := s.read("var/lib/fwpush/history.size"), strconv.Itoa(len(s.read("var/lib/fwpush/history")))+"\n"; got != want {
		t.Errorf("history.size %q, want %q", got, want)
	}
	wc := func() int { return strings.Count(strings.Join(s.calls(), "\n"), "wc -c") }
	persist()
	if n := wc(); n != 0 {
		t.Errorf("wc ran %d times; history.size knew the size", n)
	}
	// Another program makes the history larger than the bound: the next
	// append counts it, and rotates it.
	path := s.path("var/lib/fwpush/history")
	s.write("var/lib/fwpush/history", s.read("var/lib/fwpush/history")+strings.Repeat("x", 1000)+"\n")
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	persist()
	if n := wc(); n != 1 {
		t.Errorf("wc ran %d times, want once: the history changed after history.size", n)
	}
	if got := strings.Count(s.read("var/lib/fwpush/history"), "\n"); got != 1 {
		t.Errorf("the history has %d lines, want the one after its rotation", got)
	}
}
