# nft-apply.sh is apply.sh for a run whose apply is nft's (see
# nft-runs.sh): one round trip that takes the host lock, stages the
# documents, has nft and iptables test them, saves what they replace,
# arms the guard, starts the apply and waits for it. Its stdin: "TOKEN
# SECONDS LEASE WAIT N4 N6 NN NSTAGE NSWAP NCLEAN NDROP INSTALL HN RESULT
# HMAX WHO", then new.v4 (N4 bytes), new.v6, new.nft, the four ipset
# documents of a host moving back to iptables whose policy has sets (see
# ipsets.sh) and the body of the run's history line (as apply.sh's), each
# followed by the mark. INSTALL 1 installs the nftables package first,
# where nft is missing. It prints what apply.sh prints.
#
# nft -c checks the whole document against the kernel without loading it.
# The table's old rules are its listing, loaded the way the new ones are:
# created if missing, deleted, made anew; a host that had no table gets
# one deleted. The filter table is saved only when new.v4 or new.v6 change
# it.
set -u
umask 077
read -r token secs lease wait n4 n6 nn nstage nswap nclean ndrop install hn result hmax who || { echo "no header on stdin" >&2; exit 10; }
hex "$token"
nums "$secs" "$lease" "$wait" "$n4" "$n6" "$nn" "$nstage" "$nswap" "$nclean" "$ndrop" "$install" "$hn" "$hmax"
resultok "$result"
case $who in *[![:print:]]*) who='?' ;; esac
R=$F/runs/$token

acquire
cd "$R" || exit 11
head -c "$n4" > new.v4 || exit 11
mark || { echo "stdin ended early" >&2; exit 10; }
head -c "$n6" > new.v6 || exit 11
mark || { echo "stdin ended early" >&2; exit 10; }
head -c "$nn" > new.nft || exit 11
mark || { echo "stdin ended early" >&2; exit 10; }
getsets "$nstage" "$nswap" "$nclean" "$ndrop" || { echo "stdin ended early" >&2; exit 10; }
keephistory
if [ "$install" = 1 ] && ! command -v nft > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get -o DPkg::Lock::Timeout=300 -qq update &&
    apt-get -o DPkg::Lock::Timeout=300 -qq -y --no-install-recommends install nftables; } < /dev/null >&2 || exit 18
fi
stagesets || exit 16
[ "$n4" -eq 0 ] || iptables-restore -w --noflush --test < new.v4 || exit 12
[ "$n6" -eq 0 ] || ip6tables-restore -w --noflush --test < new.v6 || exit 13
nft -c -f new.nft || exit 17

if [ "$n4$n6" != 00 ] && { ! save iptables-save old.v4 || ! save ip6tables-save old.v6; }; then
  echo "cannot save the current rules" >&2
  exit 14
fi
o=
case $(nft list tables)$nl in *"table inet fwpush$nl"*) o=$(nft list table inet fwpush) || { echo "cannot save table inet fwpush" >&2; exit 14; } ;; esac
printf 'table inet fwpush {}\ndelete table inet fwpush\n%s\n' "$o" > old.nft || exit 11

arm
