package remote

import (
	"embed"
	"strings"
)

// The scripts fwpush runs on a host, one per step. Every one is a constant:
// no inventory or template value is ever put on a command line. Data
// (rules, the rollback delay, the run's token, the digest) travels on stdin
// as one frame: a header line of numbers (see frame), then the payloads, read
// with head -c, which reads no further than the bytes it is asked for.
//
// Files on a host:
//   /run/fwpush/lock/owner   the host lock: "TOKEN EXPIRES" and who holds it (see scriptApply)
//   /run/fwpush/current      the token of the run that applied last: older guards stand down
//   /run/fwpush/runs/TOKEN/  a run's files: new.v4, old.v4, its guard, its outcome, ...
//   /var/lib/fwpush/applied  the digest of the policy fwpush last applied (drift detection)
//   /etc/iptables/rules.v4   persistence, loaded at boot by iptables-persistent
//   /etc/iptables/rules.v6
//
// Exit statuses 10 and above name the step that failed (see steps in
// remote.go); a script that has something to report on stdout exits 0.
//
// Each script is a file of scripts/, embedded; its leading comment says
// what it does and is not sent.

// Section markers of scriptFacts' output.
const (
	markPrefix = "@@fwpush:"
	markSuffix = "@@"
)

//go:embed scripts/*.sh
var files embed.FS

// The scripts, one per step (see each file).
var (
	scriptFacts   = script("facts.sh")
	scriptApply   = script("apply.sh")
	scriptPersist = script("persist.sh", "store.sh")
	scriptConfirm = script("confirm.sh", "store.sh")
	scriptSettle  = script("settle.sh")
	scriptProbe   = script("probe.sh")
)

// script is the text of the named files of scripts/, one after the other,
// each without its leading comment.
func script(names ...string) string {
	var b strings.Builder
	for _, name := range names {
		data, err := files.ReadFile("scripts/" + name)
		if err != nil {
			panic(err)
		}
		text := string(data)
		for strings.HasPrefix(text, "#") {
			_, text, _ = strings.Cut(text, "\n")
		}
		b.WriteString(text)
	}
	return b.String()
}
