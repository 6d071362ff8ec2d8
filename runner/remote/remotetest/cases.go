// Package remotetest is the table of what a host goes through under
// fwpush's host protocol (runner/remote): the host before, each step
// fwpush asks of it, what the host answers, and the host after. The stub
// tests of runner/remote run the real scripts through every case, against
// stub commands; a fake of the protocol can run through the same cases
// to show that it answers as the scripts do.
package remotetest

import (
	"strings"
	"time"
)

// Host is a host's state, as far as fwpush's steps see and change it.
type Host struct {
	// V4 and V6 are its live filter tables, as iptables-restore documents
	// (no counters, no comments); "" for a table never made: a host that
	// never had rules, whose iptables-save prints nothing.
	V4, V6 string
	// Rules4 and Rules6 are /etc/iptables/rules.v4 and rules.v6, Applied
	// /var/lib/fwpush/applied (the digest of what fwpush applied last,
	// with its newline); "" for a file that is not there.
	Rules4, Rules6, Applied string
	// Persistent: iptables-persistent is installed.
	Persistent bool
	// Lock is the host lock as another run holds it; nil when it is free.
	Lock *Lock
}

// Lock is a run's hold on a host.
type Lock struct {
	Token string
	Who   string
	// Expired: its lease has ended (its run died with no guard left to
	// release the lock).
	Expired bool
}

// Do is what fwpush, or time, does to a host.
type Do string

// The steps.
const (
	Facts   Do = "facts"   // read the host
	Apply   Do = "apply"   // stage, test, arm the guard, apply
	Confirm Do = "confirm" // confirm over a fresh connection, then persist
	Persist Do = "persist" // persist, for live rules that match already
	Settle  Do = "settle"  // decide an earlier run's apply (its fwpush is gone)
	// GuardFires: the guard's delay of run Token passes before anyone
	// confirms.
	GuardFires Do = "guard fires"
	// LeaseEnds: the lease of run Token on the host lock ends (its fwpush
	// is gone).
	LeaseEnds Do = "lease ends"
)

// Step is one thing done to a host, and what the host answers.
type Step struct {
	Do    Do
	Token string // the run: Apply, Confirm, Settle, GuardFires, LeaseEnds
	// V4 and V6 are what Apply loads, or what Confirm and Persist write to
	// rules.v4 and rules.v6 (nil: the file stays as it is).
	V4, V6 []byte
	// Digest is what Confirm and Persist record as applied ("": nothing),
	// Install whether they install iptables-persistent.
	Digest  string
	Install bool
	// Keep is Settle's choice: keep the run's rules, or roll them back.
	Keep bool
	// LockWait is how long Apply waits for another run's lock (0: 1s).
	LockWait time.Duration

	// Fails names the step that fails, as remote.StepError does ("lock",
	// "test (ip6tables-restore --test)"); "" when it succeeds.
	Fails string
	// NothingChanged: the failure left the host as it was.
	NothingChanged bool
	// Outcome is what Confirm or Settle answers: "confirmed",
	// "rolledback", "failed", "pending" or "superseded".
	Outcome string
	// Log is what the log of a failed apply says, among other things.
	Log string
	// By is who Confirm's answer says decided: the run that settled this
	// one (Settler) or applied since (Who); "" for this run or its guard.
	By string
	// Read is what Facts must find.
	Read *Read
}

// Read is what the read of a host finds.
type Read struct {
	// V4 and V6 are the live tables, as Host has them.
	V4, V6                  string
	Rules4, Rules6, Applied string
	Persistent              bool
	// Lock is the token of the run that holds the host lock ("": none).
	Lock string
	// Guards are the runs whose guard is armed, undecided: "TOKEN
	// STATUS" (STATUS "" while the apply runs).
	Guards []string
}

// Case is a host through a sequence of steps.
type Case struct {
	Name  string
	Host  Host   // before
	Steps []Step // in order
	End   Host   // after
}

// Documents the cases load: policy A, a policy B that replaces it, a
// policy C that replaces B, and the open table a host that never had
// rules ends up with when its first apply is rolled back.
const (
	A4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\n-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
	A6 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\nCOMMIT\n"
	B4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\n-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n" +
		"-A INPUT -s 198.18.0.21/32 -p tcp -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
	B6 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\n-A INPUT -s 2001:db8::21/128 -p tcp -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
	C4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\n-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n" +
		"-A INPUT -s 198.18.0.22/32 -p tcp -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n"
	Open = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	// Drifted is A with a rule added by hand.
	Drifted4 = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i lo -j ACCEPT\n-A INPUT -s 198.18.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\n" +
		"-A INPUT -s 203.0.113.9/32 -j ACCEPT\nCOMMIT\n"
	// Refused6 is a document iptables refuses: its test fails.
	Refused6 = "*filter\n:INPUT DROP [0:0]\n-A INPUT -j " + UnknownTarget + "\nCOMMIT\n"
	// LoadFails6 passes the test, and fails to load: what a kernel short
	// of memory, or a module that will not load, does.
	LoadFails6 = LoadFailsLine + "\n" + B6

	DigestA = "sha256:aaaa\n"
	DigestB = "sha256:bbbb\n"
	DigestC = "sha256:cccc\n"
)

// What iptables-restore makes of a document, in the cases: the stub
// commands of runner/remote and the protocol fake of runner take these
// marks for its verdict (see Refused).
const (
	// UnknownTarget is a target iptables does not know: the test and the
	// load of a document that jumps to it fail, on that line.
	UnknownTarget = "NOSUCHTARGET"
	// LoadFailsLine passes the test, and fails the load on its line.
	LoadFailsLine = "# stub: the load fails"
)

// Refused is the line of doc on which iptables-restore fails, testing
// it (--test) or loading it; 0 when it does not. A line that jumps to
// UnknownTarget fails first.
func Refused(doc string, test bool) int {
	fails := 0
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case strings.Contains(l, UnknownTarget):
			return i + 1
		case l == LoadFailsLine && !test:
			fails = i + 1
		}
	}
	return fails
}

// The runs of the cases, and another run's.
const (
	RunA  = "0a0a0a0a0a0a0a0a"
	RunB  = "0b0b0b0b0b0b0b0b"
	Other = "0d0d0d0d0d0d0d0d"
)

// Settler runs the settles, as the host is told (the Who of its
// protocol's options); Who runs the applies.
const Settler = "op@laptop2 pid 2"

// hostA has policy A applied and persisted.
var hostA = Host{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}

// hostB is hostA once policy B is applied and persisted.
var hostB = Host{V4: B4, V6: B6, Rules4: B4, Rules6: B6, Applied: DigestB, Persistent: true}

// Cases are the branches of the protocol.
var Cases = []Case{
	{
		Name: "first run",
		Host: Host{},
		Steps: []Step{
			{Do: Facts, Read: &Read{}},
			{Do: Apply, Token: RunA, V4: []byte(A4), V6: []byte(A6)},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Lock: RunA, Guards: []string{RunA + " ok"}}},
			{Do: Confirm, Token: RunA, V4: []byte(A4), V6: []byte(A6), Digest: DigestA, Install: true, Outcome: "confirmed"},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
		},
		End: hostA,
	},
	{
		Name:  "unchanged",
		Host:  hostA,
		Steps: []Step{{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}}},
		End:   hostA,
	},
	{
		Name: "changed",
		Host: hostA,
		Steps: []Step{
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(B6)},
			{Do: Confirm, Token: RunB, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "confirmed"},
		},
		End: hostB,
	},
	{
		Name: "drift: the live rules changed by hand",
		Host: Host{V4: Drifted4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true},
		Steps: []Step{
			{Do: Facts, Read: &Read{V4: Drifted4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
			{Do: Apply, Token: RunA, V4: []byte(A4), V6: []byte(A6)},
			{Do: Confirm, Token: RunA, Outcome: "confirmed"},
		},
		End: hostA,
	},
	{
		Name: "persisted files only",
		Host: Host{V4: A4, V6: A6, Rules4: Drifted4, Applied: DigestA},
		Steps: []Step{
			{Do: Persist, V4: []byte(A4), V6: []byte(A6), Install: true},
		},
		End: hostA,
	},
	{
		Name: "the guard fires: SSH cut, the old rules back",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(B6)},
			{Do: GuardFires, Token: RunB},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
			{Do: Confirm, Token: RunB, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "rolledback"},
		},
		End: hostA,
	},
	{
		Name: "the guard of a first run fires: an open table",
		Host: Host{},
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(A4), V6: []byte(A6)},
			{Do: GuardFires, Token: RunA},
			{Do: Confirm, Token: RunA, Outcome: "rolledback"},
		},
		End: Host{V4: Open, V6: Open},
	},
	{
		Name: "iptables refuses the new rules: nothing changes",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(Refused6), Fails: "test (ip6tables-restore --test)", NothingChanged: true},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
		},
		End: hostA,
	},
	{
		Name: "the apply fails half-way: IPv4 loaded, IPv6 fails, the host as it was",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(LoadFails6)},
			{Do: Confirm, Token: RunB, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "failed", Log: "line 1 failed"},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
		},
		End: hostA,
	},
	{
		Name: "another run holds the host",
		Host: Host{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true, Lock: &Lock{Token: Other, Who: "op@laptop pid 42"}},
		Steps: []Step{
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true, Lock: Other}},
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(B6), Fails: "lock", NothingChanged: true},
		},
		End: Host{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true, Lock: &Lock{Token: Other, Who: "op@laptop pid 42"}},
	},
	{
		Name: "the lease of another run ended: its lock is taken over",
		Host: Host{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true, Lock: &Lock{Token: Other, Who: "op@laptop pid 42", Expired: true}},
		Steps: []Step{
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(B6)},
			{Do: Confirm, Token: RunB, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "confirmed"},
		},
		End: hostB,
	},
	{
		Name: "superseded: another run settled this one and applied",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: Settle, Token: RunA, Keep: false, Outcome: "rolledback"},
			{Do: Apply, Token: RunB, V4: []byte(C4), V6: []byte(A6)},
			{Do: Confirm, Token: RunA, Outcome: "superseded", By: Who},
			{Do: Confirm, Token: RunB, V4: []byte(C4), Digest: DigestC, Outcome: "confirmed"},
		},
		End: Host{V4: C4, V6: A6, Rules4: C4, Rules6: A6, Applied: DigestC, Persistent: true},
	},
	{
		Name: "a run taken for gone comes back: another run rolled it back, and says who",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: Settle, Token: RunA, Keep: false, Outcome: "rolledback"},
			{Do: Confirm, Token: RunA, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "rolledback", By: Settler},
		},
		End: hostA,
	},
	{
		Name: "a run taken for gone comes back: another run kept its apply, and says who",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: Settle, Token: RunA, Keep: true, Outcome: "confirmed"},
			{Do: Confirm, Token: RunA, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "confirmed", By: Settler},
		},
		End: hostB,
	},
	{
		Name: "an earlier run's apply kept: its rules are the policy",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: Settle, Token: RunA, Keep: true, Outcome: "confirmed"},
			{Do: Facts, Read: &Read{V4: B4, V6: B6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
			{Do: Persist, V4: []byte(B4), V6: []byte(B6), Digest: DigestB},
		},
		End: hostB,
	},
	{
		Name: "a confirm whose answer was lost: confirmed again, and persisted",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunB, V4: []byte(B4), V6: []byte(B6)},
			{Do: Confirm, Token: RunB, Outcome: "confirmed"},
			{Do: Confirm, Token: RunB, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "confirmed"},
		},
		End: hostB,
	},
	{
		Name:  "nothing left of a run to settle",
		Host:  hostA,
		Steps: []Step{{Do: Settle, Token: RunA, Keep: true, Outcome: "superseded"}},
		End:   hostA,
	},
	{
		Name: "a run's guard decided before the settle: its old rules stay back",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: GuardFires, Token: RunA},
			{Do: Settle, Token: RunA, Keep: true, Outcome: "rolledback"},
			{Do: Facts, Read: &Read{V4: A4, V6: A6, Rules4: A4, Rules6: A6, Applied: DigestA, Persistent: true}},
		},
		End: hostA,
	},
	{
		Name: "a guard whose run is no longer the latest stands down",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: LeaseEnds, Token: RunA},
			{Do: Apply, Token: RunB, V4: []byte(C4), V6: []byte(A6)},
			{Do: GuardFires, Token: RunA},
			{Do: Confirm, Token: RunB, V4: []byte(C4), Digest: DigestC, Outcome: "confirmed"},
		},
		End: Host{V4: C4, V6: A6, Rules4: C4, Rules6: A6, Applied: DigestC, Persistent: true},
	},
	{
		// Left open, run A would be listed as a guard, a later settle
		// would restore the rules A replaced (A4, two runs old), and A's
		// fwpush, come back, would confirm and persist its own (B4).
		Name: "a guard that stands down closes its run as superseded",
		Host: hostA,
		Steps: []Step{
			{Do: Apply, Token: RunA, V4: []byte(B4), V6: []byte(B6)},
			{Do: LeaseEnds, Token: RunA},
			{Do: Apply, Token: RunB, V4: []byte(C4), V6: []byte(A6)},
			{Do: GuardFires, Token: RunA},
			{Do: Confirm, Token: RunB, V4: []byte(C4), Digest: DigestC, Outcome: "confirmed"},
			{Do: Facts, Read: &Read{V4: C4, V6: A6, Rules4: C4, Rules6: A6, Applied: DigestC, Persistent: true}},
			{Do: Settle, Token: RunA, Keep: false, Outcome: "superseded"},
			{Do: Confirm, Token: RunA, V4: []byte(B4), V6: []byte(B6), Digest: DigestB, Outcome: "superseded", By: Who},
		},
		End: Host{V4: C4, V6: A6, Rules4: C4, Rules6: A6, Applied: DigestC, Persistent: true},
	},
}
