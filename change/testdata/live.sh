#!/bin/sh
# live.sh: regenerate live/, the live rules of the decision's tests, as
# iptables-save prints them on a real kernel: each state is built in a
# network namespace of its own (fwpgen-PID-N, removed at once), from the
# policies in policy/ and the commands Docker and fail2ban run. Root.
# Run from this directory: sh live.sh
set -eu
n=0
ns=
cleanup() { [ -z "$ns" ] || ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT

# state NAME HOST: runs the rest of stdin (shell) in a fresh namespace, in
# which $pol4 and $pol6 are HOST's policies, then saves live/NAME.v4 and
# live/NAME.v6.
state() {
	name=$1 host=$2
	n=$((n + 1))
	ns=fwpgen-$$-$n
	ip netns add "$ns"
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" env pol4="policy/$host.rules.v4" pol6="policy/$host.rules.v6" sh -eu
	# Some traffic, so that the counters are not all zero.
	ip netns exec "$ns" timeout 2 bash -c 'for i in 1 2 3; do : 2>/dev/null <>/dev/tcp/127.0.0.1/9; done' || true
	ip netns exec "$ns" iptables-save -t filter > "live/$name.v4"
	ip netns exec "$ns" ip6tables-save -t filter > "live/$name.v6"
	ip netns del "$ns"
	ns=
}

# A Debian server before fwpush: an open filter table with one rule added
# by hand; nothing in IPv6 (ip6tables-save prints nothing).
state fresh app-1 <<'SH'
iptables -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
SH

# What Docker and fail2ban leave in the filter table once they (re)start:
# their chains and rules (a ban), and their jumps at the top of FORWARD and
# INPUT.
others='
iptables -N DOCKER
iptables -N DOCKER-ISOLATION-STAGE-1
iptables -N DOCKER-ISOLATION-STAGE-2
iptables -N DOCKER-USER
iptables -A DOCKER -d 198.18.17.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
iptables -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
iptables -A DOCKER-ISOLATION-STAGE-1 -j RETURN
iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
iptables -A DOCKER-ISOLATION-STAGE-2 -j RETURN
iptables -A DOCKER-USER -j RETURN
iptables -I FORWARD 1 -o docker0 -j DOCKER
iptables -I FORWARD 1 -j DOCKER-ISOLATION-STAGE-1
iptables -I FORWARD 1 -j DOCKER-USER
iptables -N f2b-sshd
iptables -A f2b-sshd -s 198.51.100.66/32 -j REJECT --reject-with icmp-port-unreachable
iptables -A f2b-sshd -j RETURN
iptables -I INPUT 1 -p tcp -m multiport --dports 22 -j f2b-sshd
'

# A fresh server where Docker and fail2ban run already.
state fresh-docker app-1 <<SH
iptables -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
$others
SH

for host in app-1 db-1 lb-1; do
	state "$host.applied" "$host" <<'SH'
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
SH
done

# app-1 and db-1 once Docker and fail2ban have (re)started.
for host in app-1 db-1; do
	state "$host.docker" "$host" <<SH
iptables-restore < "\$pol4"
ip6tables-restore < "\$pol6"
$others
SH
done

# app-1, Docker and fail2ban, then fail2ban bans someone else.
state app-1.docker-ban app-1 <<SH
iptables-restore < "\$pol4"
ip6tables-restore < "\$pol6"
$others
iptables -I f2b-sshd 1 -s 198.51.100.67/32 -j REJECT --reject-with icmp-port-unreachable
SH

# app-1, Docker and fail2ban, then someone opens a port by hand.
state app-1.docker-drift app-1 <<SH
iptables-restore < "\$pol4"
ip6tables-restore < "\$pol6"
$others
iptables -A INPUT -s 198.51.100.7/32 -j ACCEPT
SH

# app-1 with a rule added by hand to fwpush's.
state app-1.drift app-1 <<'SH'
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
iptables -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT
SH

# app-1 with a chain nobody declared that lets everyone in.
state app-1.backdoor app-1 <<'SH'
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
iptables -N backdoor
iptables -A backdoor -j ACCEPT
iptables -I INPUT 1 -j backdoor
SH

# app-1 where a preserved chain jumps to a chain nobody declared.
state app-1.held app-1 <<'SH'
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
iptables -N helper
iptables -A helper -j RETURN
iptables -N DOCKER-USER
iptables -A DOCKER-USER -j helper
iptables -I FORWARD 1 -j DOCKER-USER
SH

# lb-1 with an IPv6 port opened by hand, and one of fwpush's rules deleted.
state lb-1.drift6 lb-1 <<'SH'
iptables-restore < "$pol4"
ip6tables-restore < "$pol6"
ip6tables -A INPUT -p tcp -m tcp --dport 8443 -j ACCEPT
ip6tables -D INPUT -i lo -j ACCEPT
SH
