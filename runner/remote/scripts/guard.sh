# guard.sh TOKEN SECONDS is the apply of a run and its guard, one process
# detached from the session that started it: apply.sh starts lib.sh and
# this file as a sh -c under setsid, in the run's directory, with no stdio
# but apply.log, holding the run's lock on fd 9.
#
# The guard's sleep starts first: the guard is armed before the apply
# begins. The apply swaps the new members into fwpush's sets and loads
# the new rules, unless the run was decided already (skipped), and the old
# rules and sets again if they fail (failed: the host is as it was, both
# families and the sets; see ipsets.sh); it writes how it went, then lets the run's
# lock go, which wakes apply.sh. When the sleep ends, the old rules go back
# (restore), unless fwpush confirmed by then (confirm.sh stops this process
# group), or a newer run applied since (it is the current one: this guard
# stands down, and closes its run as superseded).
set -u
token=$1 by=
R=$F/runs/$token
sleep "$2" 9>&- &
t=$!
if [ -e "$R/decided" ]; then
  s=skipped
elif swapin && iptables-restore -w --noflush < "$R/new.v4" && ip6tables-restore -w --noflush < "$R/new.v6"; then
  s=ok
else
  iptables-restore -w < "$R/old.v4"
  ip6tables-restore -w < "$R/old.v6"
  unstage
  s=failed
fi
guarded "$s" "$t"
