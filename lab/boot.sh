# boot.sh is what a reboot runs in the host before sshd starts: the
# kernel's rules wiped as a reboot leaves them (no rules, every policy
# ACCEPT, both families, both iptables backends and nftables' own, and no
# ipsets: a network namespace keeps them across the lab's reboot), then
# the firewall services a boot starts: netfilter-persistent loading
# /etc/iptables/rules.v4 and rules.v6, nftables loading /etc/nftables.conf,
# fwpush-nftables loading /etc/fwpush/fwpush.nft (after nftables, as its
# unit says), ufw. Each runs only if enabled (a systemd wants link, or an rcS.d or
# rc2.d start link), in that order; a failure is reported and the next one
# runs, as systemd goes on booting.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if command -v nft >/dev/null 2>&1; then nft flush ruleset; fi
for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
	command -v "$save" >/dev/null 2>&1 || continue
	"$save" 2>/dev/null | awk '/^\*/ || /^COMMIT/ { print } /^:/ && $2 != "-" { print $1, "ACCEPT" }' | "${save%-save}-restore" -w
done
if command -v ipset >/dev/null 2>&1; then ipset destroy 2>/dev/null; fi
enabled() {
	for f in /etc/systemd/system/*.wants/"$1".service /etc/rcS.d/S[0-9][0-9]"$1" /etc/rc2.d/S[0-9][0-9]"$1"; do
		[ -e "$f" ] && return 0
	done
	return 1
}
status=0
if enabled netfilter-persistent && command -v netfilter-persistent >/dev/null 2>&1; then
	echo "boot: netfilter-persistent start"
	netfilter-persistent start || status=1
fi
if enabled nftables && [ -r /etc/nftables.conf ] && command -v nft >/dev/null 2>&1; then
	echo "boot: nft -f /etc/nftables.conf"
	nft -f /etc/nftables.conf || status=1
fi
if enabled fwpush-nftables && [ -r /etc/fwpush/fwpush.nft ] && command -v nft >/dev/null 2>&1; then
	echo "boot: nft -f /etc/fwpush/fwpush.nft"
	nft -f /etc/fwpush/fwpush.nft || status=1
fi
if enabled ufw && [ -x /lib/ufw/ufw-init ]; then
	echo "boot: ufw-init start"
	/lib/ufw/ufw-init start || status=1
fi
exit $status
