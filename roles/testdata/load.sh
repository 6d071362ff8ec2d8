#!/bin/sh
# load.sh DIR: what TestPoliciesLoadForReal runs, in a network namespace
# of its own, once for all the policies of an inventory. DIR holds one
# directory per policy, named after its host: v4 and v6, its
# iptables-restore documents, and sets, its ipset restore one, if it has
# sets. Both documents of every policy are tested with --test; then, for
# each policy in turn, its sets are loaded (the previous policy's rules
# and sets let go first), then its documents, and what ipset save and
# iptables-save give back is written beside them, in sets.live, v4.live
# and v6.live, for the test to compare. The first command that fails
# stops it, naming the host and the command.
set -eu
dir=$1
host=

# run CMD...: runs CMD, or stops naming the host and CMD.
run() {
	"$@" || {
		echo "$host: $*: exit status $?" >&2
		exit 1
	}
}

# test_all RESTORE DOC: tests every policy's document DOC with RESTORE
# --test in one process, which tests each *filter block it reads in turn;
# if that fails, each alone, to name the host.
test_all() {
	cat "$dir"/*/"$2" | "$1" -w --test 2>"$dir/$2.err" && return
	for p in "$dir"/*/; do
		p=${p%/}
		host=${p##*/}
		run "$1" -w --test <"$p/$2"
	done
	host="all the policies"
	echo "$host: $1 --test fails on them at once, not on any alone:" >&2
	cat "$dir/$2.err" >&2
	exit 1
}

# --test needs no rules loaded, but the sets that rules name: only
# policies without sets are tested at once.
set -- "$dir"/*/sets
if [ ! -e "$1" ]; then
	test_all iptables-restore v4
	test_all ip6tables-restore v6
fi
for p in "$dir"/*/; do
	p=${p%/}
	host=${p##*/}
	if [ -e "$p/sets" ]; then
		# The previous policy's rules hold its sets.
		for restore in iptables-restore ip6tables-restore; do
			run "$restore" -w <<-END
				*filter
				:INPUT ACCEPT [0:0]
				:FORWARD ACCEPT [0:0]
				:OUTPUT ACCEPT [0:0]
				COMMIT
			END
		done
		run ipset destroy
		run ipset restore <"$p/sets"
		run ipset save >"$p/sets.live"
		run iptables-restore -w --test <"$p/v4"
		run ip6tables-restore -w --test <"$p/v6"
	fi
	run iptables-restore -w <"$p/v4"
	run ip6tables-restore -w <"$p/v6"
	run iptables-save -t filter >"$p/v4.live"
	run ip6tables-save -t filter >"$p/v6.live"
done
