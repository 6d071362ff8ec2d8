# lock.sh follows runs.sh in the steps that apply (apply.sh and
# nft-apply.sh): acquire makes the run's directory $R and takes the host
# lock for run $token, waiting for it up to $wait seconds, with a lease of
# $lease seconds, in the name of $who (see apply.sh).

# take: the host lock is this run's, within $wait seconds. The FIFO is
# open before each try: a release that comes after a try wakes the read.
take() {
  now=$(date +%s) || return 1
  end=$((now + wait))
  [ -p "$F/lock.free" ] || mkfifo -m 600 "$F/lock.free" 2>/dev/null || [ -p "$F/lock.free" ] || return 1
  exec 3<>"$F/lock.free"
  while ! mkdir "$L" 2>/dev/null; do
    oe=''
    { read -r _ oe < "$L/owner"; } 2>/dev/null
    t=$((end - now))
    case $oe in
    "" | *[!0-9]*) ;;
    *)
      if [ "$now" -gt "$oe" ]; then
        rm -rf "$L"
        continue
      fi
      [ $((oe + 1 - now)) -ge "$t" ] || t=$((oe + 1 - now)) ;;
    esac
    [ "$t" -gt 0 ] || return 1
    sleep "$t" &
    trap : CHLD
    read -r _ <&3
    trap - CHLD
    kill "$!" 2>/dev/null
    wait "$!"
    now=$(date +%s) || return 1
  done
  exec 3>&-
}

# acquire: the run's directory and the host lock are this run's, or the
# step ends (11: they cannot be made; 15: another run holds the lock). The
# runs decided earlier are cleared away (most went with the lock: see
# release).
acquire() {
  [ -d "$F/runs" ] || mkdir -p "$F/runs" || exit 11
  [ ! -e "$R" ] || rm -rf "$R" || exit 11
  # The run's directory and the lock, with one mkdir.
  if ! e=$(mkdir "$R" "$L" 2>&1); then
    if [ ! -d "$R" ]; then
      printf '%s\n' "$e" >&2
      # Were the lock made, it would have no owner: claimed, it goes.
      set -C
      { echo "$token 0" > "$L/owner"; } 2>/dev/null && rm -rf "$L"
      set +C
      exit 11
    fi
    if ! take; then
      w=
      { read -r _ && IFS= read -r w; } < "$L/owner" 2>/dev/null
      echo "another run of fwpush holds this host: $w" >&2
      rm -rf "$R"
      exit 15
    fi
  fi
  trap 'unstage; release; rm -rf "$R"' EXIT
  now=$(date +%s) || exit 11
  printf '%s %s\n%s\n' "$token" $((now + lease)) "$who" > "$L/owner" || exit 11
  # The runs decided earlier are done with: those whose outcome is written
  # went with the lock (see release); one decided without is a rollback
  # that died half-way.
  set --
  for d in "$F"/runs/*; do [ ! -e "$d/decided" ] || [ -e "$d/outcome" ] || set -- "$@" "$d"; done
  [ $# -eq 0 ] || rm -rf -- "$@"
}

# save TOOL FILE: the filter table as TOOL saves it. A server that never
# had rules saves nothing: its "old rules" are an open filter table.
nl='
'
save() {
  s=$("$1" -t filter) || return 1
  case $s in
  '*filter'* | *"$nl*filter"*) printf '%s\n' "$s" > "$2" ;;
  *) printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' > "$2" ;;
  esac
}

# arm: run $token's guard armed and its apply started, in the run's
# directory, as a process of their own (guard.sh or nft-guard.sh, in
# $guard) that outlives this session; then the apply's status, once the
# guard lets the run's lock go, or pending when it takes longer than the
# guard's $secs. A guard that reads current while it is written reads
# another token than its own, and stands down, as it must: this run takes
# over. Its second line, who runs it, is what a run superseded by this one
# is told.
arm() {
  printf '%s\n%s\n' "$token" "$who" > "$F/current" || exit 11
  echo "$now" > started && echo $((now + secs)) > fire_at || exit 11
  exec 9>lock && flock 9 || exit 11
  setsid sh -c "$guard" fwpush-guard "$token" "$secs" < /dev/null > apply.log 2>&1 &
  echo "$!" > guard.pid
  exec 9>&-
  trap - EXIT
  echo "armed $((now + secs)) $now"
  exec 8< lock
  if flock -w "$secs" 8 && { read -r s < applied.status; } 2>/dev/null; then
    echo "$s"
  else
    echo pending
  fi
}
