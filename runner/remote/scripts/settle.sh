# settle.sh decides the fate of the apply of an earlier run whose fwpush
# is gone (killed before it confirmed): KEEP 1 keeps its rules (they are
# the ones this run would apply) and disarms its guard; 0 restores the old
# rules now rather than when its guard wakes. Either way the host lock it
# held is released. Its stdin: "TOKEN KEEP WHO", WHO, the rest of the
# line, being who runs it: the outcome names it, so that the run settled,
# should it come back, says who took it for gone. It prints the outcome:
# kept, rolledback, confirmed or failed (its own confirm came first), or
# gone (nothing of that run is left). A fate it decides goes into the
# host's history as the settled run's confirm would have written it
# (settled, in record.sh): applied (or drift_repaired) for rules kept,
# rolled_back for the old rules restored; nothing when another decided.
set -u
hn=0 # no history line on stdin: the settled run's is its apply's
read -r token keep by || { echo "no header on stdin" >&2; exit 10; }
hex "$token"
case $keep in 0 | 1) ;; *) echo "bad header" >&2; exit 10 ;; esac
case $by in *[![:print:]]*) by='another run' ;; "") by='another run' ;; esac
R=$F/runs/$token
[ -d "$R" ] || { echo gone; exit 0; }
if [ "$keep" = 1 ]; then
  exec 9> "$R/lock"
  flock 9
  if decide; then
    stopguard
    dropsets
    outcome kept
    settled
  fi
  exec 9>&-
elif restore; then
  stopguard
  settled rolled_back
else
  stopguard
fi
release
o=
{ read -r o < "$R/outcome"; } 2>/dev/null
echo "${o:-gone}"
