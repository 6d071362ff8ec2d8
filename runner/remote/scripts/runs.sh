# runs.sh follows lib.sh in the scripts of the steps that deal with a run
# (see scripts.go): $token is the run's token, $R its directory; $F is
# fwpush's directory, $L the host lock.
F=$r/run/fwpush
L=$F/lock

# release: the host lock goes, if run $token holds it, and a run waiting
# for it is woken (see apply.sh). Opened read-write, the FIFO never blocks
# its writer, and what no one reads is dropped when it is closed. The
# other runs whose outcome is written go first, still under the lock and
# with the same rm (the next apply has none to clear: a process fewer);
# this run's stays, for a confirm asked again.
release() {
  o=
  { read -r o _ < "$L/owner"; } 2>/dev/null
  [ "$o" = "$token" ] || return 0
  set --
  for rd in "$F"/runs/*; do
    [ "$rd" = "$R" ] || [ ! -e "$rd/outcome" ] || set -- "$@" "$rd"
  done
  rm -rf -- "$@" "$L"
  [ ! -p "$F/lock.free" ] || echo free 1<>"$F/lock.free"
}

# decide: run $R's fate is decided here, unless it was already. Confirming
# and rolling back race for creating $R/decided, which only one of them
# can: with noclobber, sh creates a file exclusively (O_EXCL). An earlier
# fwpush made it a directory, which counts the same.
decide() {
  set -C
  if { echo > "$R/decided"; } 2>/dev/null; then d=0; else d=1; fi
  set +C
  return "$d"
}

# stopguard: the guard of run $R, and its sleep, are stopped: setsid made
# them a process group.
stopguard() {
  g=
  { read -r g < "$R/guard.pid"; } 2>/dev/null
  [ -z "$g" ] || kill -s TERM -- "-$g" 2>/dev/null
}

# back: the old rules of run $R back, each that its apply saved: the
# filter table's, and table inet fwpush's for a run whose apply was nft's
# (see nft-runs.sh).
back() {
  [ ! -e "$R/old.v4" ] || iptables-restore -w < "$R/old.v4"
  [ ! -e "$R/old.v6" ] || ip6tables-restore -w < "$R/old.v6"
  [ ! -e "$R/old.nft" ] || nft -f "$R/old.nft"
}

# restore: the old rules of run $R back, and its sets as they were (see
# ipsets.sh), unless it was decided already (then it returns 1);
# under the run's lock, which its apply holds while it runs: a late apply
# never lands after a rollback. Whoever decides writes the outcome before
# letting the lock go, so that what waits for the lock finds it; its
# second line names who decided, when another run did ($by, see
# settle.sh): a guard writes none.
restore() {
  exec 9>"$R/lock"
  flock 9
  if decide; then
    back
    unstage
    outcome rolledback
    release
    exec 9>&-
    return 0
  fi
  exec 9>&-
  return 1
}

# standdown WHO: run $R is superseded by WHO's, which applied since (its
# guard stands down): decided, unless it was already, with that outcome,
# under the run's lock as restore. Left open, a later settle would take it
# for undecided and restore its old rules, older than the newer run's. Its
# temporary sets go as its confirm's would (see ipsets.sh's droptemps).
standdown() {
  exec 9>"$R/lock"
  flock 9
  if decide; then
    by=$1
    droptemps
    outcome superseded
  fi
  exec 9>&-
}

# outcome O: the outcome of run $R is O, decided by $by ("" for its own
# run or its guard).
outcome() {
  { echo "$1"; [ -z "${by-}" ] || printf '%s\n' "$by"; } > "$R/outcome"
}

# guarded S T: the apply of run $R went S (ok, failed or skipped), which
# the guard writes and tells by letting the run's lock go; then it waits
# for its timer (process T) and restores the old rules, unless the run was
# decided by then, or a newer run applied since: it stands down, and
# closes its run.
guarded() {
  echo "$1" > "$R/applied.status"
  exec 9>&-
  wait "$2"
  c='' w=''
  { read -r c && IFS= read -r w; } 2>/dev/null < "$F/current"
  [ "$c" = "$token" ] || { standdown "$w"; exit 0; }
  restore || :
}
