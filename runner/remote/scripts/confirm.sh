# scriptConfirm runs over a fresh connection, which proves that the host
# still accepts new SSH connections. Its stdin: "TOKEN TICKS N4 N6 ND
# INSTALL", then the payloads of scriptPersist. It waits on the host, at
# most TICKS × 20 ms, for the detached apply to finish, then prints the
# outcome on its first line: "confirmed" (the apply succeeded and the guard
# is disarmed), "pending" (the apply has not finished, or the guard is
# restoring the old rules), "failed" (followed by the apply's log; the old
# rules are back and the guard is disarmed), "rolledback" (the guard won
# and the old rules are back) or "superseded" (another run took over).
# Only once confirmed does it go on to persist, in the same round trip.
PATH=$PATH:/usr/sbin:/sbin
set -u
read -r token ticks n4 n6 nd install || { echo "no header on stdin" >&2; exit 10; }
case $token in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
case $ticks:$n4:$n6:$nd:$install in *[!0-9:]*|:*|*::*|*:) echo "bad header" >&2; exit 10 ;; esac
R=/run/fwpush/runs/$token L=/run/fwpush/lock
[ -d "$R" ] || { echo superseded; exit 0; }
release() { o=; read -r o oe < "$L/owner" 2>/dev/null; [ "$o" != "$token" ] || rm -rf "$L"; }
# The guard and its sleep: setsid made them a process group.
stopguard() { kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null; }
# Whoever decided writes outcome once it is settled: the old rules back
# (rolledback), the rules kept by a later run that found them right (kept),
# or confirmed by a confirm whose answer was lost. Until then the host is
# pending, however it is going.
decided() {
  j=0
  while [ ! -e "$R/outcome" ] && [ "$j" -lt 250 ]; do sleep 0.02; j=$((j+1)); done
  case "$(cat "$R/outcome" 2>/dev/null)" in
  rolledback) echo rolledback; exit 0 ;;
  kept|confirmed) echo confirmed ;;
  *) echo pending; exit 0 ;;
  esac
}
i=0
while [ ! -e "$R/applied.status" ] && [ ! -e "$R/decided" ] && [ "$i" -lt "$ticks" ]; do sleep 0.02; i=$((i+1)); done
case "$(cat "$R/applied.status" 2>/dev/null)" in
ok)
  if mkdir "$R/decided" 2>/dev/null; then
    stopguard
    echo confirmed > "$R/outcome"
    echo confirmed
  else
    decided
  fi ;;
failed)
  mkdir "$R/decided" 2>/dev/null && { stopguard; echo failed > "$R/outcome"; }
  release
  echo failed; cat "$R/apply.log" 2>/dev/null; exit 0 ;;
skipped)
  decided ;;
*)
  if [ -e "$R/decided" ]; then decided; else echo pending; exit 0; fi ;;
esac
trap release EXIT
