# scriptSettle decides the fate of the apply of an earlier run whose
# fwpush is gone (killed before it confirmed): KEEP 1 keeps its rules (they
# are the ones this run would apply) and disarms its guard; 0 restores the
# old rules now rather than when its guard wakes. Either way the host lock
# it held is released. Its stdin: "TOKEN KEEP". It prints the outcome:
# kept, rolledback, confirmed or failed (its own confirm came first), or
# gone (nothing of that run is left).
PATH=$PATH:/usr/sbin:/sbin
set -u
read -r token keep || { echo "no header on stdin" >&2; exit 10; }
case $token in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
case $keep in 0|1) ;; *) echo "bad header" >&2; exit 10 ;; esac
R=/run/fwpush/runs/$token L=/run/fwpush/lock
[ -d "$R" ] || { echo gone; exit 0; }
if [ "$keep" = 1 ]; then
  (
    exec 9>"$R/lock"
    flock 9
    if mkdir "$R/decided" 2>/dev/null; then
      kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null
      echo kept > "$R/outcome"
    fi
  )
else
  sh "$R/restore.sh" "$token"
  kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null
fi
o=; read -r o oe < "$L/owner" 2>/dev/null; [ "$o" != "$token" ] || rm -rf "$L"
cat "$R/outcome" 2>/dev/null || echo gone
