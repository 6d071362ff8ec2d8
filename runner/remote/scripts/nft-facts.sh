# nft-facts.sh follows facts.sh (see scripts.go): what the nftables
# backend reads, in sections of its own. A host of that backend ($nft_host,
# set before facts.sh) is read in full; any other host only where
# fwpush's table may be left over, its file persisted (a host moving back
# to iptables): elsewhere it costs one test and no process. The other
# tables are read with their base chains only (nft list chains: one line a
# chain); fwpush's own table is listed whole, and only when it is there,
# as listing a table that is not there is an error.
N=$r/etc/fwpush/fwpush.nft
if [ -n "${nft_host-}" ] || [ -e "$N" ]; then
  m nfttool; command -v nft
  c=
  m nftchains; c=$(nft list chains 2>&1) && printf '%s\n' "$c" || printf '%s\n@@fwpush:error@@\n' "$c"
  m nft
  case $c in *"table inet fwpush {"*) t=$(nft list table inet fwpush 2>&1) && printf '%s\n' "$t" || printf '%s\n@@fwpush:error@@\n' "$t" ;; esac
  m nftpersisted; show "$N"
  m nftboot
  if [ -e "$r/etc/systemd/system/fwpush-nftables.service" ] && [ -e "$r/etc/systemd/system/sysinit.target.wants/fwpush-nftables.service" ]; then echo yes; fi
fi
# A host of the nftables backend keeps its sets in its table. Until
# fwpush.nft is persisted it may be one that fwpush managed with iptables
# before: the names of fwpush's ipsets (fwp-, fwq-) and
# /etc/iptables/ipsets are read, for the persist to remove fwpush's (see
# nft-store.sh). Other software's sets are neither read nor touched; once
# fwpush.nft is there, none of this costs a process.
if [ -n "${nft_host-}" ] && [ ! -e "$N" ]; then
  m persistedsets; show "$r/etc/iptables/ipsets"
  m nftoldsets
  if command -v ipset > /dev/null 2>&1 && n=$(ipset list -n 2> /dev/null); then
    set -f
    for s in $n; do case $s in fwp-?* | fwq-?*) echo "$s" ;; esac; done
    set +f
  fi
fi
