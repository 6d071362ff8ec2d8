package remote

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// The host side of fwpush's sets (scripts/ipsets.sh), on a stub host whose
// ipset keeps each set in a file, state/ipset/NAME: its type and options
// on the first line, then its members, one a line; an empty file is no
// set. Like ipset, the stub stops at the first line that fails (the lines
// before it went through), refuses to destroy a set that a live rule
// matches, and fails a line that holds "stub-fail" (one that holds
// "stub-once" the first time it runs, "stub-2nd" the second); its iptables-restore
// refuses, as the kernel does, a rule that matches a set that does not
// exist. Both use builtins only: each stands for one process, as the real
// ones do (TestSetsForks counts them).

// ipsetStub is the stub's ipset: list -n and restore.
const ipsetStub = `D=$S/ipset
case $1 in
list)
  for f in "$D"/*; do [ ! -s "$f" ] || echo "${f##*/}"; done
  exit 0 ;;
restore) ;;
*) echo "ipset stub: $*?" >&2; exit 2 ;;
esac
# used NAME: a live rule matches set NAME.
used() {
  for v in "$S/v4" "$S/v6"; do
    [ -e "$v" ] || continue
    while IFS= read -r r; do case "$r " in *"--match-set $1 "*) return 0 ;; esac; done < "$v"
  done
  return 1
}
# slurp FILE: FILE's text in $t.
slurp() {
  t=
  while IFS= read -r l; do t="$t$l
"; done < "$1"
}
n=0
while IFS= read -r l || [ -n "$l" ]; do
  n=$((n + 1))
  case $l in *stub-once*|*stub-2nd*)
    c=0; [ ! -e "$S/seen" ] || read -r c < "$S/seen"; c=$((c + 1)); echo "$c" > "$S/seen"
    case $l in *stub-once*) [ "$c" -ne 1 ] ;; *) [ "$c" -ne 2 ] ;; esac ||
      { echo "ipset v7.17: Error in line $n: stub: this line fails this time" >&2; exit 1; } ;;
  esac
  set -f; set -- $l; set +f
  err= exist=
  for a; do [ "$a" != -exist ] || exist=1; done
  f=$D/$2
  case $l in
  *stub-fail*) err="stub: this line fails" ;;
  "create "*)
    if [ -s "$f" ]; then
      [ -n "$exist" ] || err="Set cannot be created: set with the same name already exists"
    else
      c=$3
      shift 3
      for a; do [ "$a" = -exist ] || c="$c $a"; done
      echo "$c" > "$f"
    fi ;;
  "add "*)
    if [ ! -s "$f" ]; then err="The set with the given name does not exist"
    else
      dup= first=1
      while IFS= read -r m; do [ -n "$first" ] || [ "$m" != "$3" ] || dup=1; first=; done < "$f"
      if [ -z "$dup" ]; then echo "$3" >> "$f"
      elif [ -z "$exist" ]; then err="Element cannot be added to the set: it's already added"
      fi
    fi ;;
  "destroy "*)
    if [ ! -s "$f" ]; then [ -n "$exist" ] || err="The set with the given name does not exist"
    elif used "$2"; then err="Set cannot be destroyed: it is in use by a kernel component"
    else : > "$f"
    fi ;;
  "swap "*)
    if [ ! -s "$f" ] || [ ! -s "$D/$3" ]; then err="The set with the given name does not exist"
    else
      slurp "$f"; a=$t
      slurp "$D/$3"
      printf '%s' "$t" > "$f"
      printf '%s' "$a" > "$D/$3"
    fi ;;
  "save "*)
    if [ ! -s "$f" ]; then err="The set with the given name does not exist"
    else
      first=1
      while IFS= read -r m; do
        if [ -n "$first" ]; then echo "create $2 $m hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234abcd"; else echo "add $2 $m"; fi
        first=
      done < "$f"
    fi ;;
  *) err="stub: $l?" ;;
  esac
  if [ -n "$err" ]; then echo "ipset v7.17: Error in line $n: $err" >&2; exit 1; fi
done`

// setsRestoreStub is iptables-restore that first refuses a rule matching
// a set the host does not have, then does what restoreStub does.
const setsRestoreStub = `in=$S/restore.$$
while IFS= read -r l || [ -n "$l" ]; do
  printf '%s\n' "$l"
done > "$in"
while IFS= read -r l; do
  case $l in *"--match-set "*)
    s=${l#*--match-set }; s=${s%% *}
    [ -s "$S/ipset/$s" ] || { echo "${0##*/} v1.8.9 (nf_tables): Set $s doesn't exist." >&2; exit 2; } ;;
  esac
done < "$in"
exec < "$in"
` + restoreStub

// Rules that match fwp-app-4, and the same policy one rule per address.
const (
	setRules4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n" +
		"-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
	addrRules4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n" +
		"-A INPUT -s 198.18.0.21/32 -i eth1 -p tcp -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
	rules6 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
)

// The documents change.Decide makes for fwp-app-4 gaining 198.18.0.22
// (change's TestSetDocs), and for fwp-app-4 made anew.
var (
	membersChange = Sets{
		Stage: []byte("destroy fwq-app-4 -exist\ncreate fwq-app-4 hash:ip family inet -exist\nadd fwq-app-4 198.18.0.21\nadd fwq-app-4 198.18.0.22\n"),
		Swap:  []byte("swap fwq-app-4 fwp-app-4\n"),
		Clean: []byte("destroy fwq-app-4 -exist\n"),
		Drop:  []byte("destroy fwq-app-4 -exist\n"),
	}
	newSet = Sets{
		Stage: []byte("create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n"),
		Clean: []byte("destroy fwp-app-4 -exist\n"),
	}
)

// newSetsHost is a stub host with ipset, the rules v4 and rules6 live, and
// sets (NAME: members), each hash:ip family inet.
func newSetsHost(t *testing.T, v4 string, sets map[string][]string) *stubHost {
	t.Helper()
	s := newStubHost(t, remotetest.Host{V4: v4, V6: rules6, Rules4: v4, Rules6: rules6, Persistent: true})
	s.script("usr/sbin/ipset", ipsetStub)
	s.script("usr/sbin/iptables-restore", setsRestoreStub)
	s.script("usr/sbin/ip6tables-restore", setsRestoreStub)
	s.mkdir("state/ipset")
	for name, members := range sets {
		s.write("state/ipset/"+name, "hash:ip family inet\n")
		for _, m := range members {
			s.write("state/ipset/"+name, s.read("state/ipset/"+name)+m+"\n")
		}
	}
	return s
}

// sets is the host's sets and their members, sorted.
func (s *stubHost) sets() map[string][]string {
	s.t.Helper()
	out := map[string][]string{}
	files, _ := filepath.Glob(s.path("state/ipset/*"))
	for _, f := range files {
		lines := strings.Split(strings.TrimSuffix(s.read(filepath.Join("state/ipset", filepath.Base(f))), "\n"), "\n")
		if lines[0] == "" {
			continue // no set
		}
		members := lines[1:]
		slices.Sort(members)
		if len(members) == 0 {
			members = nil
		}
		out[filepath.Base(f)] = members
	}
	return out
}

// ipsetCalls are the host's ipset calls.
func (s *stubHost) ipsetCalls() []string {
	var out []string
	for _, c := range s.calls() {
		if strings.HasPrefix(c, "ipset ") {
			out = append(out, c)
		}
	}
	return out
}

const setsToken = "5e75"

func applySets(t *testing.T, s *stubHost, v4 string, sets Sets) error {
	t.Helper()
	return New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: setsToken, RollbackAfter: time.Minute,
		V4: []byte(v4), V6: []byte(rules6), Sets: sets, Lease: time.Hour, LockWait: time.Second, Who: "op@stub pid 1"})
}

func confirmSets(t *testing.T, s *stubHost, p Persist) Confirmation {
	t.Helper()
	conf, err := New(s, Options{Timeout: 10 * time.Second}).Confirm(t.Context(), Confirm{Token: setsToken, Wait: 5 * time.Second, Persist: p})
	if err != nil {
		t.Fatalf("confirm: %v", err)
	}
	return conf
}

// A change of members: the new ones staged under the temporary name,
// swapped in by the apply, the old ones (now under the temporary name)
// destroyed once confirmed. The rules are the same throughout.
func TestApplySetsMembers(t *testing.T) {
	t.Parallel()
	s := newSetsHost(t, setRules4, map[string][]string{"fwp-app-4": {"198.18.0.21"}, "blocklist": {"192.0.2.1"}})
	if err := applySets(t, s, setRules4, membersChange); err != nil {
		t.Fatal(err)
	}
	// Before the confirm, the old members wait under the temporary name.
	want := map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}, "fwq-app-4": {"198.18.0.21"}, "blocklist": {"192.0.2.1"}}
	if diff := cmp.Diff(want, s.sets()); diff != "" {
		t.Errorf("sets after the apply (-want +got):\n%s", diff)
	}
	if conf := confirmSets(t, s, Persist{}); conf.Outcome != Confirmed {
		t.Fatalf("confirm: %s", conf.Outcome)
	}
	delete(want, "fwq-app-4")
	if diff := cmp.Diff(want, s.sets()); diff != "" {
		t.Errorf("sets after the confirm (-want +got):\n%s", diff)
	}
	if got := s.state().V4; got != setRules4 {
		t.Errorf("live rules:\n%s", got)
	}
	// stage, swap (by the guard's apply), drop: one ipset each.
	if got := s.ipsetCalls(); len(got) != 3 {
		t.Errorf("ipset ran %q, want thrice: stage, swap, drop", got)
	}
}

// The guard's rollback puts back the old rules and the old members, and
// the temporary set goes.
func TestApplySetsRollback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		old, new string
		before   map[string][]string
		sets     Sets
	}{
		{"members", setRules4, setRules4, map[string][]string{"fwp-app-4": {"198.18.0.21"}}, membersChange},
		{"a set made anew, and the rules that match it", addrRules4, setRules4, map[string][]string{}, newSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetsHost(t, tc.old, tc.before)
			if err := applySets(t, s, tc.new, tc.sets); err != nil {
				t.Fatal(err)
			}
			if s.sets()["fwp-app-4"] == nil || len(s.sets()["fwp-app-4"]) != 2 {
				t.Fatalf("after the apply, sets %v: the new members are not in", s.sets())
			}
			s.fireGuard(setsToken)
			if diff := cmp.Diff(tc.before, s.sets()); diff != "" {
				t.Errorf("sets after the rollback (-want +got):\n%s", diff)
			}
			if got := s.state().V4; got != tc.old {
				t.Errorf("live rules after the rollback:\n%s\nwant the old ones", got)
			}
			if conf := confirmSets(t, s, Persist{}); conf.Outcome != RolledBack {
				t.Errorf("confirm after the rollback: %s", conf.Outcome)
			}
		})
	}
}

// A failure before the guard is armed, or in the apply, leaves the host's
// rules and sets exactly as they were, and no temporary set behind.
func TestApplySetsFails(t *testing.T) {
	t.Parallel()
	before := map[string][]string{"fwp-app-4": {"198.18.0.21"}}
	failing := membersChange
	failing.Stage = append(slices.Clone(membersChange.Stage), "add fwq-app-4 198.18.0.99 stub-fail\n"...)
	for _, tc := range []struct {
		name     string
		v4, v6   string
		sets     Sets
		step     string // the step that fails, "" for an apply that fails on the host
		swapBack bool   // the swap is undone
	}{
		{name: "the stage fails half-way", v4: setRules4, v6: rules6, sets: failing, step: "stage sets (ipset restore)"},
		{name: "iptables refuses the rules", v4: setRules4 + "-A INPUT -j NOSUCHTARGET\n", v6: rules6, sets: membersChange, step: "test (iptables-restore --test)"},
		{name: "the swap fails", v4: setRules4, v6: rules6, sets: Sets{Stage: membersChange.Stage, Swap: []byte("swap fwq-app-4 fwp-app-4\nswap stub-fail\n"), Clean: membersChange.Clean}, swapBack: true},
		{name: "the IPv6 rules fail to load after the swap", v4: setRules4, v6: "*filter\n# stub: the load fails\nCOMMIT\n", sets: membersChange, swapBack: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetsHost(t, setRules4, before)
			err := New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: setsToken, RollbackAfter: time.Minute,
				V4: []byte(tc.v4), V6: []byte(tc.v6), Sets: tc.sets, Lease: time.Hour, LockWait: time.Second})
			if tc.step != "" {
				var se *StepError
				if !errors.As(err, &se) || se.Step != tc.step || !se.NothingChanged {
					t.Fatalf("got %v, want %q to fail with nothing changed", err, tc.step)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if conf := confirmSets(t, s, Persist{}); conf.Outcome != ApplyFailed {
					t.Fatalf("confirm: %s, want failed", conf.Outcome)
				}
			}
			if diff := cmp.Diff(before, s.sets()); diff != "" {
				t.Errorf("sets after (-want +got):\n%s", diff)
			}
			if got := s.state(); got.V4 != setRules4 || got.V6 != rules6 {
				t.Errorf("live rules after:\n%s%s\nwant the old ones", got.V4, got.V6)
			}
			if tc.swapBack && !slices.Contains(s.calls(), "ip6tables-restore -w") {
				t.Errorf("the old IPv6 rules were not restored: %q", s.calls())
			}
		})
	}
}

// A run that changes no set never runs ipset, on any step.
func TestNoSetsNoIPSet(t *testing.T) {
	t.Parallel()
	s := newSetsHost(t, addrRules4, nil)
	if err := applySets(t, s, addrRules4, Sets{}); err != nil {
		t.Fatal(err)
	}
	if conf := confirmSets(t, s, Persist{V4: []byte(addrRules4)}); conf.Outcome != Confirmed {
		t.Fatalf("confirm: %s", conf.Outcome)
	}
	if _, err := New(s, Options{Timeout: 10 * time.Second}).Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The read lists the sets (there are none): nothing else.
	if got := s.ipsetCalls(); !slices.Equal(got, []string{"ipset list -n"}) {
		t.Errorf("ipset ran %q, want only the read's list", got)
	}
}

// An earlier run's apply kept by settle drops its old members as its
// confirm would have.
func TestSettleKeepDropsOldMembers(t *testing.T) {
	t.Parallel()
	s := newSetsHost(t, setRules4, map[string][]string{"fwp-app-4": {"198.18.0.21"}})
	if err := applySets(t, s, setRules4, membersChange); err != nil {
		t.Fatal(err)
	}
	out, err := New(s, Options{Timeout: 10 * time.Second}).Settle(t.Context(), setsToken, true)
	if err != nil || out != Confirmed {
		t.Fatalf("settle: %s, %v", out, err)
	}
	want := map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}}
	if diff := cmp.Diff(want, s.sets()); diff != "" {
		t.Errorf("sets after (-want +got):\n%s", diff)
	}
}

// The read saves fwpush's sets and the temporary ones, never another
// program's.
func TestFactsReadsOnlyFwpushSets(t *testing.T) {
	t.Parallel()
	s := newSetsHost(t, setRules4, map[string][]string{"fwp-app-4": {"198.18.0.21"}, "fwq-app-4": {"198.18.0.9"}, "blocklist": {"192.0.2.1"}, "fwp": {}})
	f, err := New(s, Options{Timeout: 10 * time.Second}).Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := "create fwp-app-4 hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234abcd\nadd fwp-app-4 198.18.0.21\n" +
		"create fwq-app-4 hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234abcd\nadd fwq-app-4 198.18.0.9\n"
	if !f.IPSet || f.SetsFailed || f.Sets != want {
		t.Errorf("ipset %v, failed %v (%s), sets:\n%s\nwant:\n%s", f.IPSet, f.SetsFailed, f.SetsError, f.Sets, want)
	}
}

// Persisting sets writes /etc/iptables/ipsets before the rules files and
// installs ipset-persistent with iptables-persistent.
func TestPersistSets(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: setRules4, V6: rules6})
	// mv says what it moves, in order.
	doc := "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\n"
	err := New(s, Options{Timeout: 10 * time.Second}).Persist(t.Context(), Persist{V4: []byte(setRules4), V6: []byte(rules6), Sets: []byte(doc),
		Digest: "sha256:5e75", Install: true, InstallSets: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.read("etc/iptables/ipsets"); got != doc {
		t.Errorf("ipsets:\n%s", got)
	}
	var moves, apt []string
	for _, c := range s.calls() {
		if strings.HasPrefix(c, "mv ") {
			moves = append(moves, filepath.Base(strings.Fields(c)[3]))
		}
		if strings.HasPrefix(c, "apt-get") && strings.Contains(c, " install ") {
			apt = append(apt, c)
		}
	}
	if want := []string{"ipsets", "rules.v4", "rules.v6", "applied"}; !slices.Equal(moves, want) {
		t.Errorf("files moved into place: %q, want %q", moves, want)
	}
	if len(apt) != 1 || !strings.HasSuffix(apt[0], " install iptables-persistent ipset-persistent") {
		t.Errorf("apt-get: %q, want one install of both", apt)
	}
	left, _ := os.ReadDir(s.path("etc/iptables"))
	if len(left) != 3 {
		t.Errorf("/etc/iptables holds %d files, want ipsets, rules.v4, rules.v6", len(left))
	}
}

// TestSetsForks holds what sets cost a host, counted as TestForks counts:
// the read lists the sets and saves fwpush's (two ipset): 7 for 5; an apply that
// changes members stages them and swaps them (two ipset; the four
// documents are read with builtins): 17 for 15; the confirm drops the old
// members (one ipset) and writes /etc/iptables/ipsets (its mv): 9 for 6
// (this host has no /var/lib/fwpush yet: a mkdir).
func TestSetsForks(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed (make test installs it)")
	}
	if out, err := exec.Command("strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v: %s", err, out)
	}
	s := newSetsHost(t, setRules4, map[string][]string{"fwp-app-4": {"198.18.0.21"}})
	s.trace = true
	h := New(s, Options{Timeout: 10 * time.Second})
	if _, err := h.Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := applySets(t, s, setRules4, membersChange); err != nil {
		t.Fatal(err)
	}
	doc := "create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n"
	if conf := confirmSets(t, s, Persist{V4: []byte(setRules4), V6: []byte(rules6), Sets: []byte(doc), Digest: "sha256:5e75"}); conf.Outcome != Confirmed {
		t.Fatalf("confirm: %s", conf.Outcome)
	}
	s.logExecs()
	for i, budget := range []int{7, 17, 9} {
		if i >= len(s.forks) || s.forks[i] > budget {
			t.Errorf("step %d: %v processes, budget %d", i+1, s.forks, budget)
		}
	}
}

// A host that stops between two renames of a persist (a crash, a power
// cut) must boot with sets for whichever rules files it has: at boot,
// iptables-restore refuses a whole file whose rules match a set that
// ipset-persistent did not make, and the host comes up with no firewall.
// Here the persisted rules match fwp-old-4, the new ones fwp-app-4 only:
// the host's mv stops the persist after each rename in turn, and each
// time every set the rules files on disk match is made by the ipsets file
// on disk. Without the ipsets written first, the first stop breaks that.
func TestPersistSetsCrash(t *testing.T) {
	t.Parallel()
	const (
		oldRules4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-old-4 src -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
		oldSets = "create blocklist hash:net family inet\nadd blocklist 192.0.2.0/24\n" +
			"create fwp-old-4 hash:ip family inet -exist\nadd fwp-old-4 198.18.0.30\n"
		newSets = "create blocklist hash:net family inet\nadd blocklist 192.0.2.0/24\n" +
			"create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\n"
		// change.SetsFirst(oldSets, newSets, oldRules4, rules6)
		first = newSets + "create fwp-old-4 hash:ip family inet -exist\nadd fwp-old-4 198.18.0.30\n"
	)
	p := Persist{V4: []byte(setRules4), V6: []byte(rules6 + "# new\n"), Sets: []byte(newSets), SetsFirst: []byte(first)}
	for _, tc := range []struct {
		name    string
		p       Persist
		crashAt int // the rename after which the persist stops; 0: none
		ok      bool
	}{
		{"after the ipsets written first", p, 1, true},
		{"after rules.v4", p, 2, true},
		{"after rules.v6", p, 3, true},
		{"done", p, 0, true},
		{"without the ipsets written first, after ipsets", Persist{V4: p.V4, V6: p.V6, Sets: p.Sets}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStubHost(t, remotetest.Host{V4: setRules4, V6: rules6, Rules4: oldRules4, Rules6: rules6, Persistent: true})
			s.write("etc/iptables/ipsets", oldSets)
			// mv moves, then stops the script that ran it at the
			// crashAt-th rename, as a crash would.
			s.script("bin/mv", must(exec.LookPath("mv"))+` "$@" || exit
n=0; [ ! -e "$S/mvs" ] || read -r n < "$S/mvs"; n=$((n + 1)); echo "$n" > "$S/mvs"
[ "$n" -ne `+strconv.Itoa(tc.crashAt)+` ] || kill -9 "$PPID"`)
			err := New(s, Options{Timeout: 10 * time.Second}).Persist(t.Context(), tc.p)
			if (err == nil) != (tc.crashAt == 0) {
				t.Fatalf("persist: %v", err)
			}
			made := map[string]bool{}
			for line := range strings.Lines(s.read("etc/iptables/ipsets")) {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "create" {
					made[f[1]] = true
				}
			}
			var missing []string
			for _, f := range []string{"etc/iptables/rules.v4", "etc/iptables/rules.v6"} {
				for line := range strings.Lines(s.read(f)) {
					if _, rest, ok := strings.Cut(line, "--match-set "); ok {
						if name := strings.Fields(rest)[0]; !made[name] {
							missing = append(missing, name)
						}
					}
				}
			}
			if tc.ok != (len(missing) == 0) {
				t.Errorf("sets the persisted rules match that the persisted ipsets does not make: %q\nrules.v4:\n%s\nipsets:\n%s",
					missing, s.read("etc/iptables/rules.v4"), s.read("etc/iptables/ipsets"))
			}
			if tc.crashAt == 0 {
				if got := s.read("etc/iptables/ipsets"); got != newSets {
					t.Errorf("ipsets once persisted:\n%s\nwant the new one", got)
				}
				var moves []string
				for _, c := range s.calls() {
					if f := strings.Fields(c); len(f) == 4 && f[0] == "mv" {
						moves = append(moves, filepath.Base(f[2])+" "+filepath.Base(f[3]))
					}
				}
				want := []string{".ipsets.first.fwpush ipsets", ".rules.v4.fwpush rules.v4", ".rules.v6.fwpush rules.v6", ".ipsets.fwpush ipsets"}
				if !slices.Equal(moves, want) {
					t.Errorf("renames %q, want %q", moves, want)
				}
			}
		})
	}
}

// A swap back undoes exactly what the swap did, even where ipset fails
// once and not again: the rollback of a swap that failed half-way swaps
// back only the lines that went through (run again, the line that failed
// could now go through, swapping in new members that the clean would then
// destroy the old ones of), and a swap back that fails half-way leaves the
// old members in the temporary sets for the confirm of the failed apply,
// which swaps back only the lines still swapped in.
func TestSwapBack(t *testing.T) {
	t.Parallel()
	before := map[string][]string{"fwp-app-4": {"198.18.0.21"}, "fwp-db-4": {"198.18.0.31"}}
	stage := []byte("destroy fwq-app-4 -exist\ncreate fwq-app-4 hash:ip family inet -exist\nadd fwq-app-4 198.18.0.21\nadd fwq-app-4 198.18.0.22\n" +
		"destroy fwq-db-4 -exist\ncreate fwq-db-4 hash:ip family inet -exist\nadd fwq-db-4 198.18.0.31\nadd fwq-db-4 198.18.0.32\n")
	clean := []byte("destroy fwq-app-4 -exist\ndestroy fwq-db-4 -exist\n")
	for _, tc := range []struct {
		name  string
		swap  string
		v6    string
		again bool // the apply's swap back fails: the confirm's ends it
	}{
		{"the swap fails once, half-way", "swap fwq-app-4 fwp-app-4\nswap fwq-db-4 fwp-db-4 stub-once\n", rules6, false},
		{"the swap back fails once, half-way; the confirm's ends it", "swap fwq-app-4 fwp-app-4\nswap fwq-db-4 fwp-db-4 stub-2nd\n",
			"*filter\n# stub: the load fails\nCOMMIT\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetsHost(t, setRules4, before)
			err := New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: setsToken, RollbackAfter: time.Minute,
				V4: []byte(setRules4), V6: []byte(tc.v6), Sets: Sets{Stage: stage, Swap: []byte(tc.swap), Clean: clean}, Lease: time.Hour, LockWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if tc.again {
				// The apply failed and its swap back too, at db's
				// line: db's old members wait in the temporary set.
				want := map[string][]string{"fwp-app-4": before["fwp-app-4"], "fwq-app-4": {"198.18.0.21", "198.18.0.22"},
					"fwp-db-4": {"198.18.0.31", "198.18.0.32"}, "fwq-db-4": before["fwp-db-4"]}
				if diff := cmp.Diff(want, s.sets()); diff != "" {
					t.Fatalf("sets after the apply's swap back failed (-want +got):\n%s", diff)
				}
			}
			if conf := confirmSets(t, s, Persist{}); conf.Outcome != ApplyFailed {
				t.Fatalf("confirm: %s, want failed", conf.Outcome)
			}
			if diff := cmp.Diff(before, s.sets()); diff != "" {
				t.Errorf("sets after (-want +got):\n%s", diff)
			}
			if got := s.state(); got.V4 != setRules4 || got.V6 != rules6 {
				t.Errorf("live rules after:\n%s%s\nwant the old ones", got.V4, got.V6)
			}
		})
	}
}

// A host with no ipset gets the package in the apply, before the stage,
// when the run asks (the first run with sets on it); apt is not run where
// ipset is there already.
func TestApplyInstallsIPSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		missing bool
	}{{"no ipset", true}, {"ipset there", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetsHost(t, addrRules4, nil)
			if tc.missing {
				if err := os.Remove(s.path("usr/sbin/ipset")); err != nil {
					t.Fatal(err)
				}
			}
			s.script("state/pkg/ipset", ipsetStub)
			s.script("usr/sbin/apt-get", `PATH=/usr/bin:/bin
case " $* " in *" install ipset "*) cp "$S/pkg/ipset" "$FWPUSH_TEST_ROOT/usr/sbin/ipset" ;; esac`)
			err := New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: setsToken, RollbackAfter: time.Minute,
				V4: []byte(setRules4), V6: []byte(rules6), Sets: newSet, InstallIPSet: true, Lease: time.Hour, LockWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if conf := confirmSets(t, s, Persist{}); conf.Outcome != Confirmed {
				t.Fatalf("confirm: %s", conf.Outcome)
			}
			want := map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}}
			if diff := cmp.Diff(want, s.sets()); diff != "" {
				t.Errorf("sets (-want +got):\n%s", diff)
			}
			var apt []string
			stage := -1
			for i, c := range s.calls() {
				if strings.HasPrefix(c, "apt-get") && strings.Contains(c, " install ") {
					apt = append(apt, c)
					if stage >= 0 {
						t.Errorf("apt-get ran after the stage: %q", s.calls())
					}
				}
				if c == "ipset restore" && stage < 0 {
					stage = i
				}
			}
			switch {
			case tc.missing && (len(apt) != 1 || !strings.HasSuffix(apt[0], " install ipset")):
				t.Errorf("apt-get: %q, want one install of ipset", apt)
			case !tc.missing && len(apt) > 0:
				t.Errorf("apt-get ran where ipset is: %q", apt)
			}
		})
	}
}

// A run whose guard stands down (a newer run applied since) destroys the
// temporary sets it staged, which hold the members from before it: no
// rule matches them and nothing else would destroy them. It keeps every
// other set: its own, other software's, a temporary set it did not
// stage, and the temporary sets of the newer run, if that one staged
// some (same names), which it needs to swap back.
func TestStandDownDropsTemps(t *testing.T) {
	t.Parallel()
	const newer = "b0b0"
	// The newer run's documents: fwp-app-4 gains 198.18.0.23 as well.
	moreMembers := Sets{
		Stage: []byte("destroy fwq-app-4 -exist\ncreate fwq-app-4 hash:ip family inet -exist\nadd fwq-app-4 198.18.0.21\nadd fwq-app-4 198.18.0.22\nadd fwq-app-4 198.18.0.23\n"),
		Swap:  membersChange.Swap, Clean: membersChange.Clean, Drop: membersChange.Drop,
	}
	others := map[string][]string{"blocklist": {"192.0.2.1"}, "fwq-db-4": {"198.18.0.9"}}
	for _, tc := range []struct {
		name  string
		sets  Sets // the newer run's
		after map[string][]string
	}{
		{"the newer run changes no set", Sets{}, map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}}},
		{"the newer run staged its own", moreMembers, map[string][]string{
			"fwp-app-4": {"198.18.0.21", "198.18.0.22", "198.18.0.23"}, "fwq-app-4": {"198.18.0.21", "198.18.0.22"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string][]string{"fwp-app-4": {"198.18.0.21"}}
			maps.Copy(before, others)
			s := newSetsHost(t, setRules4, before)
			if err := applySets(t, s, setRules4, membersChange); err != nil {
				t.Fatal(err)
			}
			s.endLease(setsToken)
			err := New(s, Options{Timeout: 10 * time.Second}).Apply(t.Context(), Apply{Token: newer, RollbackAfter: time.Minute,
				V4: []byte(setRules4), V6: []byte(rules6), Sets: tc.sets, Lease: time.Hour, LockWait: time.Second, Who: "op@stub2 pid 2"})
			if err != nil {
				t.Fatal(err)
			}
			s.fireGuard(setsToken)
			if got := s.read("run/fwpush/runs/" + setsToken + "/outcome"); got != "superseded\nop@stub2 pid 2\n" {
				t.Fatalf("the first run's outcome: %q, want superseded by the newer run", got)
			}
			want := maps.Clone(tc.after)
			maps.Copy(want, others)
			if diff := cmp.Diff(want, s.sets()); diff != "" {
				t.Errorf("sets after the first run stood down (-want +got):\n%s", diff)
			}
			// The newer run's rollback still finds its temporary sets.
			s.fireGuard(newer)
			want = map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}}
			maps.Copy(want, others)
			if diff := cmp.Diff(want, s.sets()); diff != "" {
				t.Errorf("sets after the newer run rolled back (-want +got):\n%s", diff)
			}
		})
	}
}
