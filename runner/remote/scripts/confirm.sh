# confirm.sh runs over a fresh connection, which proves that the host
# still accepts new SSH connections. Its stdin: "TOKEN WAIT N4 N6 NSETS
# DIGEST INSTALL HN RESULT HMAX NFIRST", WAIT in milliseconds, then the payloads
# of persist.sh. It
# waits on the host, at most WAIT, for the detached apply to finish (for
# the run's lock, which the apply holds while it runs), then prints the
# outcome on its first line: "confirmed" (the apply succeeded and the guard
# is disarmed), "pending" (the apply has not finished, or the guard is
# restoring the old rules), "failed" (followed by the apply's log; the old
# rules are back and the guard is disarmed), "rolledback" (the guard won,
# or another run that took this one for gone, and the old rules are back)
# or "superseded" (another run took over). Lines follow that say who
# decided and when: "by WHO" when another run did (it rolled back or kept
# this run's apply, or, superseded, it applied since), and "guard FIRE
# NOW" while pending or rolled back: when the guard fires (fired) and the
# time it is, by the host's clock. Only once confirmed does it go on to
# persist (store), in the same round trip. The history (see record.sh)
# gets the outcome it learns: RESULT once persisted, failed (the apply, or
# the persist after it), rolled_back.
set -u
read -r token ms n4 n6 nsets digest install hn result hmax nfirst || { echo "no header on stdin" >&2; exit 10; }
hex "$token"
nums "$ms" "$n4" "$n6" "$nsets" "$install" "$hn" "$hmax" "$nfirst"
digestok "$digest"
resultok "$result"
readhistory
R=$F/runs/$token

# byline: "by WHO", when another run decided ($b, see outcome in runs.sh).
byline() {
  [ -z "$b" ] || printf 'by %s\n' "$b"
}

# guardat: when the guard of run $R fires, and the time it is, by the
# host's clock.
guardat() {
  a=
  { read -r a < "$R/fire_at"; } 2>/dev/null
  [ -z "$a" ] || echo "guard $a $(date +%s)"
}

# Who applied last, when it is another run: it superseded this one, if
# this run's directory is gone (cleared by a later run), or if this run
# was decided (settled by another run, say) and another run applied since.
c='' b=''
{ read -r c && IFS= read -r b; } 2>/dev/null < "$F/current"
if [ ! -d "$R" ] || { [ -e "$R/decided" ] && [ -n "$c" ] && [ "$c" != "$token" ]; }; then
  [ "$c" != "$token" ] || b=
  echo superseded
  byline
  exit 0
fi

# locked SECONDS: the run's lock is this script's, within SECONDS. The
# apply holds it while it runs, a rollback until its outcome is written.
locked() {
  [ -e "$R/lock" ] || return 1
  exec 8< "$R/lock"
  flock -w "$1" 8
}

# status: how the apply went, in $s; "" while it runs.
status() {
  s=
  { read -r s < "$R/applied.status"; } 2>/dev/null
}

# Whoever decided writes outcome once it is settled: the old rules back
# (rolledback), the rules kept by a later run that found them right (kept),
# or confirmed by a confirm whose answer was lost. Until then the host is
# pending, however it is going.
decided() {
  [ -e "$R/outcome" ] || locked 5
  o='' b=''
  { read -r o && IFS= read -r b; } 2>/dev/null < "$R/outcome"
  case $o in
  rolledback)
    record rolled_back
    echo rolledback
    byline
    guardat
    exit 0 ;;
  kept | confirmed) echo confirmed; byline ;;
  superseded) echo superseded; byline; exit 0 ;;
  *) echo pending; guardat; exit 0 ;;
  esac
}

status
if [ -z "$s" ] && [ ! -e "$R/decided" ]; then
  locked "$((ms / 1000)).$((ms / 100 % 10))$((ms / 10 % 10))$((ms % 10))"
  status
fi
case $s in
ok)
  if decide; then
    stopguard
    dropsets
    echo confirmed > "$R/outcome"
    echo confirmed
  else
    decided
  fi ;;
failed)
  if decide; then
    stopguard
    unstage # what the apply's could not swap back, if anything
    echo failed > "$R/outcome"
  fi
  release
  record failed
  echo failed
  show "$R/apply.log"
  exit 0 ;;
skipped) decided ;;
*)
  if [ -e "$R/decided" ]; then decided; else echo pending; guardat; exit 0; fi ;;
esac
exec 8<&-
# ended: the lock goes; a persist that failed is recorded as such.
ended() {
  e=$?
  release
  [ "$e" -eq 0 ] || record failed
}
trap ended EXIT
store
record "$result"
