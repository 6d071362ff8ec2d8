#!/usr/bin/env bash
# Installs what fwpush's demo and tests need on a Debian machine, only when
# it is missing: OpenSSH server and client, iptables (and ip6tables),
# iproute2 (ip netns), util-linux (unshare, nsenter, pivot_root), sudo (the
# lab's login users become root with it), ipset (validate loads a policy's
# sets before its rules), nftables (validate loads the tables of the
# nftables backend with nft; the lab's hosts use it), shellcheck (every
# shell script is checked by the tests), strace (the tests count the
# processes the scripts fork on a host). Needs root for apt.
#
# Installing Debian's nftables package changes no rule of this machine:
# its postinst enables nftables.service only where it was enabled before,
# and restarts it only on an upgrade, only under systemd; the service,
# which would load /etc/nftables.conf (flush ruleset first) at boot, stays
# disabled.
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v iptables-restore >/dev/null 2>&1 || [ -x /usr/sbin/iptables-restore ] || need+=(iptables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v ipset >/dev/null 2>&1 || [ -x /usr/sbin/ipset ] || need+=(ipset)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v strace >/dev/null 2>&1 || need+=(strace)
# fwpush installs iptables-persistent on servers that lack it. A lab host's
# filesystem is an overlay of this machine's, so with it installed here the
# hosts start with it (the lab can purge it from a host to rehearse the
# install, from its local apt repository); it is told not to save the rules
# of the moment (the lab's hosts keep their own /etc/iptables).
persistent=0
dpkg-query -W -f='${Status}' iptables-persistent 2>/dev/null | grep -q 'install ok installed' || persistent=1
# Likewise ipset-persistent, which fwpush installs beside it where the
# policy has sets (the default), told not to save the sets of the moment.
dpkg-query -W -f='${Status}' ipset-persistent 2>/dev/null | grep -q 'install ok installed' || persistent=1
# Extra commands a target needs (make graph: dot), installed from their package.
for extra in "$@"; do
	pkg=$extra
	case $extra in dot) pkg=graphviz ;; esac
	command -v "$extra" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && [ $persistent -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${need[*]}: run as root, or install them with apt-get" >&2
	exit 1
fi
echo "deps: installing ${need[*]} $([ $persistent -eq 1 ] && echo iptables-persistent ipset-persistent)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ $persistent -eq 1 ]; then
	printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\niptables-persistent iptables-persistent/autosave_v6 boolean false\nipset-persistent ipset-persistent/autosave boolean false\n' | debconf-set-selections
	apt-get install -y -qq --no-install-recommends iptables-persistent ipset-persistent >/dev/null
fi
