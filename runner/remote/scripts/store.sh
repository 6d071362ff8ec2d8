# persistBody is the part of scriptPersist that scriptConfirm shares: it
# expects $n4 $n6 $nd $install read from the header, and the payloads next
# on stdin.
umask 022
put() { # put SIZE DIR NAME: stdin's next SIZE bytes become DIR/NAME, atomically
  mkdir -p "$2" && head -c "$1" > "$2/.$3.fwpush" && [ "$(wc -c < "$2/.$3.fwpush")" -eq "$1" ] && mv -f "$2/.$3.fwpush" "$2/$3"
}
if [ "$n4" -gt 0 ]; then put "$n4" /etc/iptables rules.v4 || exit 20; fi
if [ "$n6" -gt 0 ]; then put "$n6" /etc/iptables rules.v6 || exit 21; fi
if [ "$nd" -gt 0 ]; then
  mkdir -p /var/lib/fwpush && head -c "$nd" > /var/lib/fwpush/.applied.fwpush || exit 23
fi
if [ "$install" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  { printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\niptables-persistent iptables-persistent/autosave_v6 boolean false\n' | debconf-set-selections &&
    apt-get -o DPkg::Lock::Timeout=300 -qq update &&
    apt-get -o DPkg::Lock::Timeout=300 -qq -y install iptables-persistent; } </dev/null >&2 || exit 22
fi
if [ "$nd" -gt 0 ]; then mv -f /var/lib/fwpush/.applied.fwpush /var/lib/fwpush/applied || exit 23; fi
echo persisted
