# nft-guard.sh TOKEN SECONDS is guard.sh for a run whose apply is nft's
# (see nft-runs.sh): the same guard, armed before the apply begins, the
# same outcomes; the apply loads the run's documents (load), and the old
# rules go back (back) when it fails, then the sets as they were
# (unstage).
set -u
token=$1 by=
R=$F/runs/$token
sleep "$2" 9>&- &
t=$!
if [ -e "$R/decided" ]; then
  s=skipped
elif load; then
  s=ok
else
  back
  unstage
  s=failed
fi
guarded "$s" "$t"
