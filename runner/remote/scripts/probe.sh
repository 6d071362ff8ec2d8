# scriptProbe connects, on the host it runs on, to every "ID ADDR PORT
# PHASE" line of its stdin and prints one "ID RESULT MICROSECONDS" line per
# probe: connected, refused, timeout, or "error exit N: what bash said".
# Its first stdin line is "TIMEOUT BATCH FLOOR FACTOR HINT" (microseconds,
# probes at once, microseconds, a multiple, microseconds).
#
# Probes of phase 1 (the ones expected to be reachable) go first, each
# allowed TIMEOUT. Their answers measure this host's round-trip time, as
# nmap does: phase 2 (the ones expected to be filtered, which can only end
# by timing out) then waits FACTOR × the slowest answer, at least FLOOR and
# at most TIMEOUT. A host with nothing to make in phase 1 uses HINT, a
# round trip fwpush measured to it, instead (0: none); one whose phase 1
# got no answer gives phase 2 the whole TIMEOUT, so a slow link is never
# cut short. The timeout used is printed
# as "timeout MICROSECONDS".
#
# It needs nothing a minimal Debian server lacks: bash's /dev/tcp and
# $EPOCHREALTIME, coreutils' timeout. The addresses reach the connecting
# shell as arguments, never as code.
PATH=$PATH:/usr/bin:/bin
command -v bash >/dev/null 2>&1 || { echo "bash is not installed: fwpush probes with bash's /dev/tcp" >&2; exit 3; }
command -v timeout >/dev/null 2>&1 || { echo "timeout (coreutils) is not installed" >&2; exit 3; }
LC_ALL=C exec bash -c '
set -f
read -r T B F K H || exit 2
for v in "$T" "$B" "$F" "$K" "$H"; do case $v in ""|*[!0-9]*) echo "bad header: $T $B $F $K $H" >&2; exit 2 ;; esac; done
[ "$B" -gt 0 ] || { echo "bad batch size: $B" >&2; exit 2; }
probe() { # probe ID ADDR PORT MICROSECONDS
  out=$(timeout "$(printf "%d.%06d" $(($4 / 1000000)) $(($4 % 1000000)))" bash -c "s=\$EPOCHREALTIME; : 3<>\"/dev/tcp/\$0/\$1\"; rc=\$?; e=\$EPOCHREALTIME; echo \"@\$rc \$(( \${e/./} - \${s/./} ))\"; exit \$rc" "$2" "$3" 2>&1)
  rc=$?
  us=${out##*@}; us=${us#* }
  case $us in ""|*[!0-9]*) us=0 ;; esac
  case $rc:$out in
  124:*) echo "$1 timeout $4" ;;
  0:*) echo "$1 connected $us" ;;
  *"Connection refused"*) echo "$1 refused $us" ;;
  *) echo "$1 error exit $rc:" ${out%@*} ;;
  esac
}
phase() { # phase N MICROSECONDS: every probe of phase N, B at once
  local ph=$1 t=$2 n=0
  for line in "${lines[@]}"; do
    set -- $line
    [ "$4" = "$ph" ] || continue
    probe "$1" "$2" "$3" "$t" &
    n=$((n+1)); [ $((n % B)) -ne 0 ] || wait
  done
  wait
}
lines=()
while read -r id a p ph; do
  case $id in ""|*[!0-9]*) continue ;; esac
  case $p in ""|*[!0-9]*) echo "$id error bad port: $p"; continue ;; esac
  case $a in ""|*[!0-9a-fA-F.:]*) echo "$id error bad address: $a"; continue ;; esac
  case $ph in 1|2) ;; *) echo "$id error bad phase: $ph"; continue ;; esac
  lines+=("$id $a $p $ph")
done
slowest=0
while read -r id result us; do
  [ -n "$id" ] || continue
  echo "$id $result $us"
  case $result in connected|refused) [ "$us" -le "$slowest" ] || slowest=$us ;; esac
done <<< "$(phase 1 "$T")"
[ "$slowest" -gt 0 ] || slowest=$H
t2=$T
if [ "$slowest" -gt 0 ]; then
  t2=$((slowest * K)); [ "$t2" -ge "$F" ] || t2=$F; [ "$t2" -le "$T" ] || t2=$T
fi
echo "timeout $t2"
phase 2 "$t2"
' fwpush-probe
