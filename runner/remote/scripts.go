package remote

import (
	"embed"
	"regexp"
	"strings"
	"sync"
)

// The scripts fwpush runs on a host, one per step, are the files of
// scripts/, embedded. Every one is a constant: no inventory or template
// value is ever put on a command line. Data (rules, the rollback delay,
// the run's token, the digest) travels on stdin as one frame: a header
// line of numbers and hex (see frame), then the payloads, each read to
// its size and no further (by builtins, or head -c when large: see
// payload in lib.sh), and followed by a mark line that tells a payload
// cut short.
//
// Files on a host:
//
//	/run/fwpush/lock/owner   the host lock: "TOKEN EXPIRES" and who holds it (see apply.sh)
//	/run/fwpush/lock.free    a FIFO: whoever releases the lock wakes a run waiting for it
//	/run/fwpush/current      the token of the run that applied last: older guards stand down
//	/run/fwpush/runs/TOKEN/  a run's files: new.v4, old.v4, its lock, its guard, its outcome, ...
//	/var/lib/fwpush/applied  the digest of the policy fwpush last applied (drift detection)
//	/var/lib/fwpush/history  a JSON line per change fwpush made, history.1 before it, history.size its size (see record.sh)
//	/etc/iptables/rules.v4   persistence, loaded at boot by iptables-persistent
//	/etc/iptables/rules.v6
//	/etc/iptables/ipsets     fwpush's sets (and other software's), loaded at boot before the rules by ipset-persistent
//	/etc/fwpush/fwpush.nft   the nftables backend's: table inet fwpush, loaded at boot by
//	/etc/systemd/system/fwpush-nftables.service, enabled in sysinit.target.wants/
//
// Exit statuses 10 and above name the step that failed (see steps in
// remote.go); a script that has something to report on stdout exits 0.
//
// A step's script is lib.sh, runs.sh and ipsets.sh for the steps that
// deal with a run, store.sh and record.sh for the two that persist
// (record.sh for the apply, which keeps the run's history line, and the
// settle, which may write it, too), then the step's own file; the comments of the files, lines that begin
// with #, stay here: the hosts get the code (sudo logs every command it
// runs, whole).

// Section markers of the facts script's output.
const (
	markPrefix = "@@fwpush:"
	markSuffix = "@@"
)

// endMark follows every payload on stdin (see mark in lib.sh).
const endMark = "@@fwpush:end@@\n"

//go:embed scripts/*.sh scripts/*.bash
var files embed.FS

// scripts are the programs of the steps.
type scripts struct {
	facts, apply, persist, confirm, settle, probe, history string
	// guard is the program apply.sh starts detached: the apply and its guard.
	guard string
	// The steps of a run whose apply is nft's: a host of the nftables
	// backend, or one moving between the backends (see nft-runs.sh);
	// persist and confirm where they write files of the nftables
	// backend's. nftFacts reads a host of the nftables backend in full.
	// Settling needs none of its own: runs.sh's back restores what any
	// apply saved.
	nftFacts, nftApply, nftGuard, nftPersist, nftConfirm string
	// wrap begins every command (see wrap), wrapArg those whose deadline
	// is on the command line (wrap without its read); skip begins the
	// scripts that sudo -S runs (see dataMark).
	wrap, wrapArg, skip string
}

// sent are the scripts as the hosts get them, composed at their first
// use: most of fwpush's commands (validate, render, lab, history, ...)
// send none, and composing them all cost every start 3.6 ms and 580 KB.
var sent = sync.OnceValue(func() scripts { return compose(code) })

// compose makes the scripts of the files of scripts/, each one as read
// gives it.
func compose(read func(name string) string) scripts {
	lib := read("lib.sh")
	runs := lib + read("runs.sh") + read("ipsets.sh")
	store := read("store.sh") + read("record.sh")
	guard := runs + read("guard.sh")
	nftRuns := runs + read("nft-runs.sh")
	nftGuard := nftRuns + read("nft-guard.sh")
	// nft-store.sh's store stands in for store.sh's, which it calls as
	// ipt_store.
	iptStore := strings.Replace(store, "\nstore() {", "\nipt_store() {", 1)
	if iptStore == store {
		panic("store.sh defines no store()")
	}
	nftStore := iptStore + read("nft-store.sh")
	return scripts{
		facts:      lib + read("facts.sh") + read("nft-facts.sh"),
		nftFacts:   lib + "nft_host=1\n" + read("facts.sh") + read("nft-facts.sh"),
		nftGuard:   nftGuard,
		nftApply:   read("guard.var") + "guard=" + quote(nftGuard) + "\n" + runs + read("lock.sh") + read("record.sh") + read("nft-apply.sh"),
		nftPersist: lib + nftStore + read("persist.sh"),
		nftConfirm: runs + nftStore + read("confirm.sh"),
		guard:      guard,
		apply:      read("guard.var") + "guard=" + quote(guard) + "\n" + runs + read("lock.sh") + read("record.sh") + read("apply.sh"),
		persist:    lib + store + read("persist.sh"),
		confirm:    runs + store + read("confirm.sh"),
		settle:     runs + read("record.sh") + read("settle.sh"),
		history:    lib + read("history.sh"),
		probe:      read("probe.sh") + "LC_ALL=C exec bash -c " + quote(read("probe.bash")) + " fwpush-probe\n",
		wrap:       read("wrap.sh"),
		wrapArg:    strings.Replace(read("wrap.sh"), wrapRead, "", 1),
		skip:       read("skip.sh"),
	}
}

// wrapRead is the line of wrap.sh that reads the deadline off stdin.
const wrapRead = "read -r d || exit 10\n"

// directives are what compose adds between the files, for shellcheck.
var directives = map[string]string{
	"guard.var": "# shellcheck disable=SC2016 # a program for sh -c: it expands there\n",
}

// whole reads a file of scripts/ as it is.
func whole(name string) string {
	if d, ok := directives[name]; ok {
		return d
	}
	data, err := files.ReadFile("scripts/" + name)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// heredoc finds a here-document (not bash's here-string): code would
// strip the lines of one that begin with #.
var heredoc = regexp.MustCompile(`(^|[^<])<<-?[^<]`)

// eval finds the line that begins a here-document made with eval, whose
// body is a variable's value, which code cannot strip (see facts.sh).
var eval = regexp.MustCompile(`(?m)^.*\beval "[^"\n]*<<'@@'$`)

// code reads a file of scripts/ without its comments and blank lines.
func code(name string) string {
	text := whole(name)
	// Only a file with "<<" may hold one (the regular expressions cost
	// fwpush's start a few milliseconds on every file).
	if strings.Contains(text, "<<") && heredoc.MatchString(eval.ReplaceAllString(text, "")) {
		panic("scripts/" + name + ": a here-document: its lines would lose what begins with #")
	}
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
