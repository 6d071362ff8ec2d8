#!/bin/sh
# sets.sh: regenerate live/sets/, the live rules and sets of the decision's
# tests with sets, as iptables-save and ipset print them on a real kernel:
# each state is built in a network namespace of its own (fwpgen-PID-N,
# removed at once), from db-1's policy with sets in policy-sets/ (fwpush
# render --sets --out policy-sets fleet.toml). NAME.ipset is what fwpush's
# read of a host prints of its sets: ipset list -n, then ipset save of the
# sets named fwp- or fwq- only. Root. Run from this directory: sh sets.sh
set -eu
n=0
ns=
cleanup() { [ -z "$ns" ] || ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p live/sets

# state NAME: runs the rest of stdin (shell) in a fresh namespace, in which
# $pol4, $pol6 and $sets are db-1's policy, then saves live/sets/NAME.v4,
# .v6 and .ipset.
state() {
	name=$1
	n=$((n + 1))
	ns=fwpgen-$$-$n
	ip netns add "$ns"
	ip netns exec "$ns" env pol4=policy-sets/db-1.rules.v4 pol6=policy-sets/db-1.rules.v6 sets=policy-sets/db-1.ipsets sh -eu
	ip netns exec "$ns" iptables-save -t filter > "live/sets/$name.v4"
	ip netns exec "$ns" ip6tables-save -t filter > "live/sets/$name.v6"
	# shellcheck disable=SC2016 # expands in the namespace's shell
	ip netns exec "$ns" sh -c 'set --; for s in $(ipset list -n); do case $s in fwp-?* | fwq-?*) set -- "$@" "$s" ;; esac; done
		[ $# -eq 0 ] || printf "save %s\n" "$@" | ipset restore' > "live/sets/$name.ipset"
	ip netns del "$ns"
	ns=
}

# db-1 with its policy and sets applied.
state applied <<'SH'
ipset restore < "$sets"
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
SH

# db-1 as the fleet was before app-2: fwp-app-4 holds app-1 alone.
state before-app-2 <<'SH'
grep -v 198.18.0.22 "$sets" | ipset restore
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
SH

# db-1 with a member added to fwpush's set by hand.
state drift <<'SH'
ipset restore < "$sets"
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
ipset add fwp-app-4 203.0.113.9
SH

# db-1 with its per-address policy (before fwpush had sets), and a set of
# other software that fwpush does not read.
state per-address <<'SH'
iptables-restore < policy/db-1.rules.v4
ip6tables-restore < policy/db-1.rules.v6
ipset create blocklist hash:net family inet
ipset add blocklist 192.0.2.0/24
SH

# db-1 where someone matched a set of other software in fwpush's INPUT.
state blocklist <<'SH'
ipset restore < "$sets"
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
ipset create blocklist hash:net family inet
ipset add blocklist 192.0.2.0/24
iptables -I INPUT 2 -m set --match-set blocklist src -j DROP
SH

# db-1 with what a killed apply left: a temporary set, and a set of an
# older policy that no rule matches.
state leftovers <<'SH'
ipset restore < "$sets"
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
ipset create fwq-app-4 hash:ip family inet
ipset add fwq-app-4 198.18.0.21
ipset create fwp-old-4 hash:ip family inet
ipset add fwp-old-4 198.18.0.41
SH

# db-1 whose fwp-app-4 someone made again by hand, a hash:net, that the
# rules match.
state wrong-type <<'SH'
sed 's/hash:ip/hash:net/' "$sets" | ipset restore
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
SH
