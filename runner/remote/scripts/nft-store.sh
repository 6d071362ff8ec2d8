# nft-store.sh follows store.sh in the steps that persist a run whose
# apply is nft's (see scripts.go), whose store it replaces: it reads, after
# rules.v4, rules.v6 and ipsets, a second header line "NN FLAGS ND",
# fwpush.nft (NN bytes) and an ipset restore document (ND bytes), each
# followed by the mark. It writes the files of the filter table
# as store.sh does (ipt_store, store.sh's own store), then its own:
# /etc/fwpush/fwpush.nft, atomically, and the unit that loads it at boot,
# fwpush-nftables.service, enabled by its link in sysinit.target's wants
# (which needs no systemd running; where systemd runs it is told to reload
# its units). FLAGS are letters: u writes the unit (and its link), r
# removes fwpush.nft and the unit (a host moving back to iptables), i
# removes rules.v4 and rules.v6 (a host moving to nftables: fwpush's
# filter table must not come back at boot), s /etc/iptables/ipsets (it
# held fwpush's sets only; where it held others', store.sh rewrote it
# without fwpush's). The ipset document destroys fwpush's sets on a host
# moving to nftables, whose sets are in its table now: once confirmed,
# as the old filter table's rules, which a rollback puts back, match
# them. A set that cannot go (a rule of someone else's matches it) stays,
# and so do the ones after it: the run does not fail for it. It never
# touches
# /etc/nftables.conf, whose flush ruleset would wipe every other table.
# The record of what was applied goes last.
store() {
  d=$digest
  digest=-
  ipt_store > /dev/null
  digest=$d
  read -r nn flags nd || { echo "no second header on stdin" >&2; exit 10; }
  nums "$nn" "$nd"
  case $flags in "" | *[!uris-]*) echo "bad header" >&2; exit 10 ;; esac
  E=$r/etc/fwpush
  put "$nn" fwpush.nft && keep "$nn" fwpush.nft || exit 25
  if [ "$nd" -gt 0 ]; then
    d=$(head -c "$nd") || exit 10
    printf '%s\n' "$d" | ipset restore >&2 || echo "fwpush: fwpush's ipsets from the line above on stay" >&2
  fi
  mark || { echo "stdin ended early" >&2; exit 10; }
  U=$r/etc/systemd/system
  case $flags in *u*)
    { [ -d "$U/sysinit.target.wants" ] || mkdir -p "$U/sysinit.target.wants"; } &&
      printf '%s\n' '[Unit]' \
        'Description=fwpush: load table inet fwpush' \
        'Documentation=man:fwpush(1)' \
        'DefaultDependencies=no' \
        'Wants=network-pre.target' \
        'Before=network-pre.target shutdown.target' \
        'After=nftables.service' \
        'Conflicts=shutdown.target' \
        '' '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' \
        'ExecStart=/usr/sbin/nft -f /etc/fwpush/fwpush.nft' \
        'ExecReload=/usr/sbin/nft -f /etc/fwpush/fwpush.nft' \
        '' '[Install]' 'WantedBy=sysinit.target' > "$U/.fwpush-nftables.service.fwpush" &&
      mv -f "$U/.fwpush-nftables.service.fwpush" "$U/fwpush-nftables.service" &&
      ln -sf ../fwpush-nftables.service "$U/sysinit.target.wants/fwpush-nftables.service" || exit 26
    if [ -d "$r/run/systemd/system" ]; then systemctl daemon-reload >&2 || exit 26; fi ;;
  esac
  case $flags in *r*)
    rm -f "$U/sysinit.target.wants/fwpush-nftables.service" "$U/fwpush-nftables.service" "$E/fwpush.nft" || exit 26 ;;
  esac
  case $flags in *i*)
    rm -f "$r/etc/iptables/rules.v4" "$r/etc/iptables/rules.v6" || exit 20 ;;
  esac
  case $flags in *s*)
    rm -f "$r/etc/iptables/ipsets" || exit 24 ;;
  esac
  S=$r/var/lib/fwpush
  if [ "$digest" != - ]; then
    if ! { [ -d "$S" ] || mkdir -p "$S"; } || ! echo "$digest" > "$S/.applied.fwpush" || ! mv -f "$S/.applied.fwpush" "$S/applied"; then
      rm -f "$S/.applied.fwpush"
      exit 23
    fi
  fi
  echo persisted
}
