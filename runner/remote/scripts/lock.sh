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
