# store.sh is what persist.sh and confirm.sh share: store writes what makes
# the policy survive a reboot and records what was applied, each only when
# asked. It expects $n4 $n6 $nsets $digest $install $nfirst read from the
# header, and rules.v4 (N4 bytes), rules.v6, ipsets and the ipsets written
# first (NFIRST bytes) next on stdin, each followed by the mark (a size of
# 0 keeps the file as it is; a digest of - keeps the
# record). INSTALL is 0, 1 (install iptables-persistent) or 2 (and
# ipset-persistent, its plugin that loads /etc/iptables/ipsets at boot,
# before the rules).
#
# The files are written atomically (a temporary file in the same
# directory, then rename; a temporary file that failed, an empty one on a
# full disk, goes) and go first: installing iptables-persistent starts
# netfilter-persistent, which loads whatever rules.v4 is on disk; an old
# file there would replace the policy just applied (and could cut SSH).
# ipsets is renamed into place before rules.v4 and rules.v6: rules that
# match a set load at boot only if the set does. When the rules there now
# match a set the new ipsets no longer makes, the ipsets written first
# (change.SetsFirst) makes the sets of both, and the new ipsets replaces
# it once both rules files are in place: a host that stops between two
# renames still boots with sets for its rules. apt runs without
# questions (it must not save the rules or sets of the moment: fwpush
# writes its own files), waiting for the dpkg lock instead of failing when
# apt is busy. The state goes last, so that a run that failed half-way is
# not taken for done.

# put SIZE NAME: the next SIZE bytes of stdin become $E/.NAME.fwpush,
# which keep moves into place.
put() {
  if [ "$1" -eq 0 ]; then
    mark
    return
  fi
  t=$E/.$2.fwpush
  { [ -d "$E" ] || mkdir -p "$E"; } && payload "$1" "$t" && return 0
  rm -f "$t"
  return 1
}

# keep SIZE NAME [AS]: the file put wrote becomes $E/NAME ($E/AS), if it
# wrote one (of SIZE bytes).
keep() {
  [ "$1" -ne 0 ] || return 0
  t=$E/.$2.fwpush
  mv -f "$t" "$E/${3:-$2}" && return 0
  rm -f "$t"
  return 1
}

store() {
  umask 022
  E=$r/etc/iptables
  S=$r/var/lib/fwpush
  put "$n4" rules.v4 || exit 20
  put "$n6" rules.v6 || { rm -f "$E/.rules.v4.fwpush"; exit 21; }
  put "$nsets" ipsets || { rm -f "$E/.rules.v4.fwpush" "$E/.rules.v6.fwpush"; exit 24; }
  put "$nfirst" ipsets.first || { rm -f "$E/.rules.v4.fwpush" "$E/.rules.v6.fwpush" "$E/.ipsets.fwpush"; exit 24; }
  if [ "$nfirst" -eq 0 ]; then keep "$nsets" ipsets || exit 24; else keep "$nfirst" ipsets.first ipsets || exit 24; fi
  keep "$n4" rules.v4 || exit 20
  keep "$n6" rules.v6 || exit 21
  [ "$nfirst" -eq 0 ] || keep "$nsets" ipsets || exit 24
  if [ "$digest" != - ]; then
    if ! { [ -d "$S" ] || mkdir -p "$S"; } || ! echo "$digest" > "$S/.applied.fwpush"; then
      rm -f "$S/.applied.fwpush"
      exit 23
    fi
  fi
  if [ "$install" != 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    set -- iptables-persistent
    [ "$install" != 2 ] || set -- iptables-persistent ipset-persistent
    { printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\niptables-persistent iptables-persistent/autosave_v6 boolean false\nipset-persistent ipset-persistent/autosave boolean false\n' | debconf-set-selections &&
      apt-get -o DPkg::Lock::Timeout=300 -qq update &&
      apt-get -o DPkg::Lock::Timeout=300 -qq -y install "$@"; } < /dev/null >&2 || exit 22
  fi
  if [ "$digest" != - ]; then mv -f "$S/.applied.fwpush" "$S/applied" || exit 23; fi
  echo persisted
}
