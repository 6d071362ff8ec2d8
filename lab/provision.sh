# provision.sh shapes a host that is up, as its options ask: $1 1 to
# purge iptables-persistent, ipset-persistent and netfilter-persistent
# (ipset-persistent, a plugin of it, would hold it), $2 1 to set the login
# user's password (user:password on stdin, for chpasswd), then the
# packages to install from the local repository. Package names are
# validated; nothing else arrives on the command line.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
purge=$1 password=$2
shift 2
if [ "$purge" = 1 ]; then
	dpkg --purge iptables-persistent ipset-persistent netfilter-persistent
fi
if [ $# -gt 0 ]; then
	apt-get -qq update
	# Files the lab wrote win over the packages' own (/etc/nftables.conf).
	apt-get -qq -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "$@"
fi
if [ "$password" = 1 ]; then
	chpasswd
fi
