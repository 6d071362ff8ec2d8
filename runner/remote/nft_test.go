package remote

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/runner/remote/remotetest"
	"github.com/fwpush/fwpush/runner/transport"
)

// nftStub is nft on a stub host: table inet fwpush is state/nft (as nft
// lists it; empty: no table), the other tables state/nft-others (as nft
// list chains lists them). nft -f loads what follows the document's
// "delete table inet fwpush" as the table, in one go; nft -c -f only
// reads it. A line with NOSUCHVERDICT fails both, the comment "# stub: the
// load fails" the load only.
const nftStub = `case "$1 $2" in
"list tables")
  [ ! -s "$S/nft" ] || echo "table inet fwpush"
  [ ! -s "$S/nft-others" ] || while IFS= read -r l; do case $l in "table "*) echo "${l% \{}" ;; esac; done < "$S/nft-others"
  exit 0 ;;
"list chains")
  [ ! -s "$S/nft" ] || printf 'table inet fwpush {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n'
  [ ! -s "$S/nft-others" ] || show "$S/nft-others"
  exit 0 ;;
"list table")
  [ "$3 $4" = "inet fwpush" ] && [ -s "$S/nft" ] || { echo "Error: No such file or directory; did you mean table 'fwpush' in family inet?" >&2; exit 1; }
  show "$S/nft"
  exit 0 ;;
esac
check=
[ "$1" != -c ] || { check=1; shift; }
[ "$1" = -f ] || { echo "stub nft: $*?" >&2; exit 1; }
after='' doc=''
while IFS= read -r l || [ -n "$l" ]; do
  case $l in
  *NOSUCHVERDICT*) echo "$2:5:3-15: Error: Could not parse NOSUCHVERDICT" >&2; exit 1 ;;
  "# stub: the load fails") [ -n "$check" ] || { echo "$2: Error: Could not process rule: No such file or directory" >&2; exit 1; } ;;
  "#"* | "") ;;
  "delete table inet fwpush") after=1 ;;
  *) [ -z "$after" ] || doc="$doc$l
" ;;
  esac
done < "$2"
[ -n "$check" ] || printf '%s' "$doc" > "$S/nft"`

// Tables as the stub lists them.
const (
	nftOld = "table inet fwpush {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept\n\t}\n}\n"
	nftNew = "table inet fwpush {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 443 accept\n\t}\n}\n"
	// A foreign table: Docker's, say.
	nftOthers = "table ip other {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n\tchain user {\n\t}\n}\n" +
		"table netdev edge {\n\tchain ingress {\n\t\ttype filter hook ingress device \"eth1\" priority -500; policy accept;\n\t}\n}\n"
)

// document is what fwpush sends nft -f for table.
func document(table string) []byte {
	return []byte("# fwpush policy\ntable inet fwpush {}\ndelete table inet fwpush\n" + table)
}

// newNFTHost is a stub host with nft, its table as table says ("": none).
func newNFTHost(t *testing.T, h remotetest.Host, table string) (*stubHost, *Host) {
	t.Helper()
	s := newStubHost(t, h)
	s.script("usr/sbin/nft", nftStub)
	s.write("state/nft", table)
	s.write("state/nft-others", nftOthers)
	return s, New(s, Options{Timeout: 10 * time.Second, Name: "stub", NFT: true})
}

// The read of a host of the nftables backend: its table as nft lists it,
// the other tables with their base chains, the files that load fwpush's
// table at boot.
func TestNFTFacts(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{}, nftOld)
	s.write("etc/fwpush/fwpush.nft", "persisted\n")
	s.write("etc/systemd/system/fwpush-nftables.service", "[Unit]\n")
	s.write("etc/systemd/system/sysinit.target.wants/fwpush-nftables.service", "[Unit]\n")
	f, err := h.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := &live.NFT{
		Tool: true, Own: nftOld, Persisted: "persisted\n", Boot: true,
		Tables: []live.Table{
			{Family: "ip", Name: "other", Chains: []live.BaseChain{{Name: "input", Type: "filter", Hook: "input", Priority: "0", Policy: "drop"}}},
			{Family: "netdev", Name: "edge", Chains: []live.BaseChain{{Name: "ingress", Type: "filter", Hook: "ingress", Priority: "-500", Policy: "accept"}}},
		},
	}
	if diff := cmp.Diff(want, f.NFT); diff != "" {
		t.Errorf("nft facts (-want +got):\n%s", diff)
	}

	// Without a table, nft is not asked to list one.
	s.write("state/calls", "\n")
	if err := os.Remove(s.path("state/nft")); err != nil {
		t.Fatal(err)
	}
	if f, err = h.Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.NFT == nil || f.NFT.Own != "" || f.NFT.ListFailed {
		t.Errorf("a host without the table read as %+v", f.NFT)
	}
	if slices.Contains(s.calls(), "nft list table inet fwpush") {
		t.Errorf("nft listed a table the host has not: %q", s.calls())
	}

	// Its sets are in its table: once fwpush.nft is persisted, ipset is
	// not asked, nor /etc/iptables/ipsets read, even where both are
	// there.
	s.script("usr/sbin/ipset", ipsetStub)
	s.mkdir("state/ipset")
	s.write("state/ipset/fwp-app-4", "hash:ip family inet\n198.18.0.3\n")
	s.write("etc/iptables/ipsets", "create fwp-app-4 hash:ip family inet\n")
	s.write("state/calls", "\n")
	if f, err = h.Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.IPSet || f.Sets != "" || f.SetsFailed || f.PersistedSets != "" {
		t.Errorf("a host of the nftables backend read ipsets: %+v", f)
	}
	if slices.ContainsFunc(s.calls(), func(c string) bool { return strings.HasPrefix(c, "ipset") }) {
		t.Errorf("ipset ran on a host of the nftables backend: %q", s.calls())
	}

	// Before it is, the host may be one fwpush managed with iptables:
	// the names of fwpush's ipsets are read, and /etc/iptables/ipsets,
	// not other software's sets.
	s.write("state/ipset/f2b-sshd", "hash:ip family inet\n198.51.100.9\n")
	s.write("state/ipset/fwq-app-4", "hash:ip family inet\n")
	if err := os.Remove(s.path("etc/fwpush/fwpush.nft")); err != nil {
		t.Fatal(err)
	}
	s.write("state/calls", "\n")
	if f, err = h.Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.NFT.OldSets, []string{"fwp-app-4", "fwq-app-4"}) || f.PersistedSets != "create fwp-app-4 hash:ip family inet\n" || f.IPSet || f.Sets != "" {
		t.Errorf("the read of a host not persisted yet: old sets %q, ipsets %q, ipset %v, sets %q", f.NFT.OldSets, f.PersistedSets, f.IPSet, f.Sets)
	}
	if got := s.ipsetCalls(); !slices.Equal(got, []string{"ipset list -n"}) {
		t.Errorf("ipset ran %q, want only its list of names", got)
	}
}

// A host of the iptables backend reads nothing of nftables, unless
// fwpush's file is there (it moves back from nftables): then it reads
// fwpush's table too.
func TestNFTFactsOfIPTablesHost(t *testing.T) {
	t.Parallel()
	s := newStubHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6})
	s.script("usr/sbin/nft", nftStub)
	s.write("state/nft", nftOld)
	h := New(s, Options{Timeout: 10 * time.Second})
	f, err := h.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if f.NFT != nil || slices.ContainsFunc(s.calls(), func(c string) bool { return strings.HasPrefix(c, "nft") }) {
		t.Errorf("an iptables host read nftables: %+v, %q", f.NFT, s.calls())
	}
	s.write("etc/fwpush/fwpush.nft", "persisted\n")
	if f, err = h.Facts(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.NFT == nil || f.NFT.Own != nftOld {
		t.Errorf("an iptables host with fwpush.nft read %+v", f.NFT)
	}
}

// nftState is what the nft steps change on a stub host.
type nftState struct {
	Table, Persisted, Unit, Link, Applied, V4, Rules4 string
	Lock                                              bool
}

func (s *stubHost) nftState() nftState {
	_, err := os.Stat(s.path("run/fwpush/lock"))
	return nftState{
		Table: s.read("state/nft"), Persisted: s.read("etc/fwpush/fwpush.nft"),
		Unit: s.read("etc/systemd/system/fwpush-nftables.service"), Link: s.read("etc/systemd/system/sysinit.target.wants/fwpush-nftables.service"),
		Applied: s.read("var/lib/fwpush/applied"), V4: s.read("state/v4"), Rules4: s.read("etc/iptables/rules.v4"),
		Lock: err == nil,
	}
}

func nftApply(token string, doc []byte) Apply {
	return Apply{Token: token, RollbackAfter: time.Minute, NFT: doc, Lease: time.Hour, LockWait: time.Second, Who: "op@stub pid 1"}
}

// A push to a host of the nftables backend: the table tested with nft -c,
// loaded with nft -f under the guard; the confirm persists fwpush.nft and
// the unit that loads it at boot, and records the policy. Nothing of the
// filter table is touched, no other table is, and /etc/nftables.conf is
// never written.
func TestNFTApplyConfirm(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6}, nftOld)
	s.mkdir("run/systemd/system") // systemd runs: it is told of the unit
	doc := document(nftNew)
	if err := h.Apply(t.Context(), nftApply(remotetest.RunA, doc)); err != nil {
		t.Fatal(err)
	}
	conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: 5 * time.Second,
		Persist: Persist{Digest: "sha256:new", NFTFiles: NFTFiles{NFT: doc, Boot: true}}})
	if err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm: %v, %v", conf, err)
	}
	got := s.nftState()
	if got.Table != nftNew || got.Persisted != string(doc) || got.Applied != "sha256:new\n" || got.Lock || got.V4 != remotetest.A4 {
		t.Errorf("the host after: %+v", got)
	}
	for _, want := range []string{"ExecStart=/usr/sbin/nft -f /etc/fwpush/fwpush.nft", "WantedBy=sysinit.target", "After=nftables.service"} {
		if !strings.Contains(got.Unit, want) || got.Link != got.Unit {
			t.Errorf("the unit lacks %q, or is not enabled:\n%s", want, got.Unit)
		}
	}
	// The lab has no systemd (its boot does the unit's step): systemd
	// itself reads the unit here, where it is installed.
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		// --man=no: fwpush's man page is not installed here.
		out, err := exec.Command(analyze, "verify", "--man=no", s.path("etc/systemd/system/fwpush-nftables.service")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify fwpush-nftables.service: %v\n%s", err, out)
		}
	}
	if s.read("state/nft-others") != nftOthers {
		t.Error("another table changed")
	}
	var nft, restores []string
	for _, c := range s.calls() {
		switch {
		case strings.HasPrefix(c, "nft -") || c == "systemctl daemon-reload":
			nft = append(nft, c)
		case strings.Contains(c, "tables-restore"):
			restores = append(restores, c)
		}
	}
	want := []string{"nft -c -f new.nft", "nft -f " + s.path("run/fwpush/runs/"+remotetest.RunA+"/new.nft"), "systemctl daemon-reload"}
	if diff := cmp.Diff(want, nft); diff != "" || restores != nil {
		t.Errorf("nft runs (-want +got):\n%s\niptables-restore runs: %q", diff, restores)
	}
	if _, err := os.Stat(s.path("etc/nftables.conf")); err == nil {
		t.Error("/etc/nftables.conf written")
	}
}

// The guard restores the previous table, or its absence, when fwpush does
// not confirm.
func TestNFTGuardRestores(t *testing.T) {
	t.Parallel()
	for _, before := range []string{nftOld, ""} {
		t.Run("table "+map[bool]string{true: "there", false: "absent"}[before != ""], func(t *testing.T) {
			s, h := newNFTHost(t, remotetest.Host{}, before)
			if err := h.Apply(t.Context(), nftApply(remotetest.RunA, document(nftNew))); err != nil {
				t.Fatal(err)
			}
			if got := s.read("state/nft"); got != nftNew {
				t.Fatalf("applied: %q", got)
			}
			s.fireGuard(remotetest.RunA)
			if got := s.nftState(); got.Table != before || got.Lock || got.Persisted != "" {
				t.Errorf("after the guard fired: %+v, want the table %q", got, before)
			}
			conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: time.Second, Persist: Persist{NFTFiles: NFTFiles{NFT: []byte("x"), Boot: true}}})
			if err != nil || conf.Outcome != RolledBack {
				t.Errorf("confirm after the rollback: %v, %v", conf, err)
			}
			if s.read("etc/fwpush/fwpush.nft") != "" {
				t.Error("a rolled back run persisted")
			}
		})
	}
}

// A table nft refuses is refused by its test, before anything changes;
// one whose load fails puts the old table back.
func TestNFTApplyRefused(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{}, nftOld)
	err := h.Apply(t.Context(), nftApply(remotetest.RunA, document("table inet fwpush {\n\tchain input {\n\t\tNOSUCHVERDICT\n\t}\n}\n")))
	checkStep(t, err, "test (nft -c)")
	if se := err.(*StepError); !se.NothingChanged || !strings.Contains(se.Error(), "NOSUCHVERDICT") {
		t.Errorf("%v: nothing changed %v, want the host's words", err, se.NothingChanged)
	}
	if got := s.nftState(); got.Table != nftOld || got.Lock {
		t.Errorf("after the refused test: %+v", got)
	}

	if err := h.Apply(t.Context(), nftApply(remotetest.RunB, document("# stub: the load fails\n"+nftNew))); err != nil {
		t.Fatal(err)
	}
	conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunB, Wait: 5 * time.Second, Persist: Persist{NFTFiles: NFTFiles{NFT: []byte("x")}}})
	if err != nil || conf.Outcome != ApplyFailed || !strings.Contains(conf.Log, "Could not process rule") {
		t.Errorf("confirm: %+v, %v", conf, err)
	}
	if got := s.nftState(); got.Table != nftOld || got.Lock || got.Persisted != "" {
		t.Errorf("after the failed load: %+v", got)
	}
}

// Installing nftables where nft is missing comes before the test.
func TestNFTInstall(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{}, "")
	if err := os.Rename(s.path("usr/sbin/nft"), s.path("nft")); err != nil {
		t.Fatal(err)
	}
	s.script("usr/sbin/apt-get", `case " $* " in *" install nftables "*) mv "$FWPUSH_TEST_ROOT/nft" "$FWPUSH_TEST_ROOT/usr/sbin/nft" ;; esac`)
	a := nftApply(remotetest.RunA, document(nftNew))
	a.InstallNFT = true
	if err := h.Apply(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if got := s.read("state/nft"); got != nftNew {
		t.Errorf("after the install: %q", got)
	}
	if !slices.ContainsFunc(s.calls(), func(c string) bool { return strings.HasSuffix(c, "install nftables") }) {
		t.Errorf("nftables not installed: %q", s.calls())
	}
}

// A host moving to nftables: the filter table is released in the same
// guarded apply, rules.v4 and rules.v6 go; one moving back: the table is
// deleted, the policy loaded with iptables-restore, fwpush.nft and its unit
// go.
func TestNFTMigration(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{V4: remotetest.A4, V6: remotetest.A6, Rules4: remotetest.A4, Rules6: remotetest.A6, Persistent: true}, "")
	a := nftApply(remotetest.RunA, document(nftNew))
	a.V4, a.V6 = []byte(remotetest.Open), []byte(remotetest.Open)
	if err := h.Apply(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: 5 * time.Second,
		Persist: Persist{Digest: "sha256:nft", NFTFiles: NFTFiles{NFT: document(nftNew), Boot: true, RemoveIPT: true}}})
	if err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm: %v, %v", conf, err)
	}
	if got := s.nftState(); got.Table != nftNew || got.V4 != remotetest.Open || got.Rules4 != "" || got.Persisted == "" {
		t.Errorf("moved to nftables: %+v", got)
	}

	// And back: the run's apply is nft's, to delete the table.
	b := nftApply(remotetest.RunB, []byte(nftDelete))
	b.V4, b.V6 = []byte(remotetest.B4), []byte(remotetest.B6)
	if err := h.Apply(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	conf, err = h.Confirm(t.Context(), Confirm{Token: remotetest.RunB, Wait: 5 * time.Second,
		Persist: Persist{V4: []byte(remotetest.B4), V6: []byte(remotetest.B6), Digest: "sha256:ipt", NFTFiles: NFTFiles{RemoveNFT: true}}})
	if err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm: %v, %v", conf, err)
	}
	want := nftState{V4: remotetest.B4, Rules4: remotetest.B4, Applied: "sha256:ipt\n"}
	if diff := cmp.Diff(want, s.nftState()); diff != "" {
		t.Errorf("moved back to iptables (-want +got):\n%s", diff)
	}
}

// A host moving to nftables gives up fwpush's ipsets once its table is
// confirmed: its sets (fwp-, fwq-) destroyed, other software's kept;
// /etc/iptables/ipsets removed where it held fwpush's sets only.
func TestNFTMigrationSets(t *testing.T) {
	t.Parallel()
	s, h := newNFTHost(t, remotetest.Host{V4: setRules4, V6: rules6, Rules4: setRules4, Rules6: rules6, Persistent: true}, "")
	s.script("usr/sbin/ipset", ipsetStub)
	s.mkdir("state/ipset")
	for name, set := range map[string]string{"fwp-app-4": "198.18.0.21\n", "fwq-app-4": "", "f2b-sshd": "198.51.100.9\n"} {
		s.write("state/ipset/"+name, "hash:ip family inet\n"+set)
	}
	s.write("etc/iptables/ipsets", "create fwp-app-4 hash:ip family inet\nadd fwp-app-4 198.18.0.21\n")
	a := nftApply(remotetest.RunA, document(nftNew))
	a.V4, a.V6 = []byte(remotetest.Open), []byte(remotetest.Open)
	if err := h.Apply(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if got := s.sets(); len(got) != 3 {
		t.Errorf("the apply touched the sets, before it is confirmed: %v", got)
	}
	conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: 5 * time.Second,
		Persist: Persist{Digest: "sha256:nft", NFTFiles: NFTFiles{NFT: document(nftNew), Boot: true, RemoveIPT: true,
			DropSets: []byte("destroy fwp-app-4 -exist\ndestroy fwq-app-4 -exist\n"), RemoveSets: true}}})
	if err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm: %v, %v", conf, err)
	}
	if diff := cmp.Diff(map[string][]string{"f2b-sshd": {"198.51.100.9"}}, s.sets()); diff != "" {
		t.Errorf("the sets after the move (-want +got):\n%s", diff)
	}
	if got := s.nftState(); got.Table != nftNew || got.Rules4 != "" || got.Persisted == "" {
		t.Errorf("moved to nftables: %+v", got)
	}
	if _, err := os.Stat(s.path("etc/iptables/ipsets")); !os.IsNotExist(err) {
		t.Errorf("/etc/iptables/ipsets is still there: %v", err)
	}

	// Where ipsets holds others' sets too, the persist writes it without
	// fwpush's (store.sh); a set that cannot go stays, and the run goes on.
	s.write("state/ipset/fwp-app-4", "hash:ip family inet\n198.18.0.21\n")
	s.write("state/v4", "*filter\n-A INPUT -m set --match-set fwp-app-4 src -j ACCEPT\nCOMMIT\n")
	b := nftApply(remotetest.RunB, document(nftOld))
	if err := h.Apply(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	others := "create f2b-sshd hash:ip family inet\nadd f2b-sshd 198.51.100.9\n"
	conf, err = h.Confirm(t.Context(), Confirm{Token: remotetest.RunB, Wait: 5 * time.Second,
		Persist: Persist{Sets: []byte(others), NFTFiles: NFTFiles{DropSets: []byte("destroy fwp-app-4 -exist\n")}}})
	if err != nil || conf.Outcome != Confirmed {
		t.Fatalf("confirm with a set in use: %v, %v", conf, err)
	}
	if got := s.sets(); len(got["fwp-app-4"]) != 1 {
		t.Errorf("a set in use was destroyed: %v", got)
	}
	if got := s.read("etc/iptables/ipsets"); got != others {
		t.Errorf("ipsets: %q, want %q", got, others)
	}
}

// A host moving back to iptables whose policy has sets, which it has not
// (they were in its table): the apply, nft's, stages them before
// iptables tests the rules that match them; confirmed, they stay; a
// failed load takes them away again with the rules.
func TestNFTMoveBackSets(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		v4   string
		want map[string][]string
	}{
		{name: "confirmed", v4: setRules4, want: map[string][]string{"fwp-app-4": {"198.18.0.21", "198.18.0.22"}}},
		{name: "the load fails", v4: remotetest.LoadFailsLine + "\n" + setRules4, want: map[string][]string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, h := newNFTHost(t, remotetest.Host{V4: remotetest.Open, V6: remotetest.Open}, nftOld)
			s.script("usr/sbin/ipset", ipsetStub)
			s.script("usr/sbin/iptables-restore", setsRestoreStub)
			s.mkdir("state/ipset")
			a := nftApply(remotetest.RunA, []byte(nftDelete))
			a.V4, a.V6, a.Sets = []byte(c.v4), []byte(rules6), newSet
			err := h.Apply(t.Context(), a)
			if err != nil {
				t.Fatal(err)
			}
			conf, err := h.Confirm(t.Context(), Confirm{Token: remotetest.RunA, Wait: 5 * time.Second,
				Persist: Persist{V4: []byte(c.v4), V6: []byte(rules6), Digest: "sha256:ipt", NFTFiles: NFTFiles{RemoveNFT: true}}})
			if c.want["fwp-app-4"] == nil {
				if err == nil && conf.Outcome == Confirmed {
					t.Fatalf("a load that fails was confirmed")
				}
			} else if err != nil || conf.Outcome != Confirmed {
				t.Fatalf("confirm: %v, %v", conf, err)
			}
			if diff := cmp.Diff(c.want, s.sets()); diff != "" {
				t.Errorf("sets (-want +got):\n%s", diff)
			}
			if got := s.nftState(); (got.V4 == c.v4) != (c.want["fwp-app-4"] != nil) {
				t.Errorf("the filter table: %q", got.V4)
			}
		})
	}
}

// nftDelete deletes table inet fwpush, whether it is there or not.
const nftDelete = "table inet fwpush {}\ndelete table inet fwpush\n"

// Settling an nft run whose fwpush is gone: rolled back, its table goes
// back (or away) with the same settle script as an iptables run's; kept,
// it stays. Either way the history gets the line nft's apply kept.
func TestNFTSettle(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		keep    bool
		outcome Outcome
		table   string
		history string
	}{{false, RolledBack, nftOld, "rolled_back"}, {true, Confirmed, nftNew, "drift_repaired"}} {
		t.Run(string(c.outcome), func(t *testing.T) {
			s, h := newNFTHost(t, remotetest.Host{}, nftOld)
			a := nftApply(remotetest.RunA, document(nftNew))
			a.History, a.Done = historyBody(remotetest.RunA), history.DriftRepaired
			if err := h.Apply(t.Context(), a); err != nil {
				t.Fatal(err)
			}
			out, err := h.Settle(t.Context(), remotetest.RunA, c.keep)
			if err != nil || out != c.outcome {
				t.Fatalf("settle: %s, %v; want %s", out, err, c.outcome)
			}
			if got := s.nftState(); got.Table != c.table || got.Lock {
				t.Errorf("after the settle: %+v, want the table %q", got, c.table)
			}
			if diff := cmp.Diff([]string{c.history + " " + remotetest.RunA}, outcomes(historyOf(t, s))); diff != "" {
				t.Errorf("the host's history (-want +got):\n%s", diff)
			}
		})
	}
}

// commandsSeen is a session that notes the commands run through it.
type commandsSeen struct {
	*stubHost
	cmds []string
}

func (c *commandsSeen) Run(ctx context.Context, cmd string, stdin []byte) (transport.Result, error) {
	c.cmds = append(c.cmds, cmd)
	return c.stubHost.Run(ctx, cmd, stdin)
}

// A host of the nftables backend keeps a history as an iptables host
// does: nft's confirm and persist append the line the run sent (record.sh,
// which they share with iptables'), with the outcome the host learned. A
// run whose apply was nft's confirms with nft's script, the one Apply
// starts ahead, even with no file of nft's to write.
func TestNFTHistory(t *testing.T) {
	t.Parallel()
	s, _ := newNFTHost(t, remotetest.Host{}, nftOld)
	seen := &commandsSeen{stubHost: s}
	h := New(seen, Options{Timeout: 10 * time.Second, Name: "stub", NFT: true})
	A, B, C, D, E := remotetest.RunA, remotetest.RunB, "c0ffee", "d00d", "e0"
	apply := func(token string, doc []byte) {
		t.Helper()
		if err := h.Apply(t.Context(), nftApply(token, doc)); err != nil {
			t.Fatal(err)
		}
	}
	confirm := func(token string, p Persist, want Outcome) {
		t.Helper()
		p.History = historyBody(token)
		conf, err := h.Confirm(t.Context(), Confirm{Token: token, Wait: 5 * time.Second, Persist: p})
		if err != nil || conf.Outcome != want {
			t.Fatalf("confirm %s: %+v, %v; want %s", token, conf, err, want)
		}
		if last := seen.cmds[len(seen.cmds)-1]; last != wrap(sent().nftConfirm, plain) {
			t.Errorf("confirm %s ran %.80q, not nft's confirm", token, last)
		}
	}
	doc := document(nftNew)
	apply(A, doc)
	confirm(A, Persist{Digest: "sha256:new", Done: history.Applied, NFTFiles: NFTFiles{NFT: doc, Boot: true}}, Confirmed)
	// The table changed by hand, its file as it was: nothing of nft's
	// to write.
	apply(B, doc)
	confirm(B, Persist{Done: history.DriftRepaired}, Confirmed)
	apply(C, document(nftOld))
	s.fireGuard(C)
	confirm(C, Persist{Done: history.Applied, NFTFiles: NFTFiles{NFT: document(nftOld)}}, RolledBack)
	apply(D, document("# stub: the load fails\n"+nftOld))
	confirm(D, Persist{Done: history.Applied, NFTFiles: NFTFiles{NFT: document(nftOld)}}, ApplyFailed)
	if err := h.Persist(t.Context(), Persist{Done: history.Applied, History: historyBody(E), NFTFiles: NFTFiles{Boot: true}}); err != nil {
		t.Fatal(err)
	}

	entries := historyOf(t, s)
	want := []string{"applied " + A, "drift_repaired " + B, "rolled_back " + C, "failed " + D, "applied " + E}
	if diff := cmp.Diff(want, outcomes(entries)); diff != "" {
		t.Errorf("the host's history (-want +got):\n%s", diff)
	}
	for _, e := range entries {
		if e.Host != "stub" || e.Who != "op@stub" || e.Added != 2 || e.Removed != 1 {
			t.Errorf("entry %+v: want the line the run sent", e)
		}
	}
	if got := s.nftState(); got.Table != nftNew || got.Persisted != string(doc) || got.Applied != "sha256:new\n" || got.Lock {
		t.Errorf("the host after: %+v", got)
	}
}
