# probe.bash is the part of probe.sh that bash runs (see probe.sh): it
# reads the probes, makes those of phase 1, times phase 2 from their
# answers (adapt), and makes those of phase 2.
set -f
read -r T B F K H || exit 2
for v in "$T" "$B" "$F" "$K" "$H"; do case $v in ""|*[!0-9]*) echo "bad header: $T $B $F $K $H" >&2; exit 2 ;; esac; done
[ "$B" -gt 0 ] || { echo "bad batch size: $B" >&2; exit 2; }
# A probe's time counts from its connect, not from when its process was
# made: on a busy host (a lab's hosts share the machine's CPUs) starting a
# process can take longer than a probe may wait, and a probe that had not
# even connected would be reported filtered. So each probe is a fork of
# the script's shell, no new program: the connect runs in a process
# substitution that says when it starts, and the probe waits for its
# answer with read's timeout.
printf -v TS "%d.%06d" $((T / 1000000)) $((T % 1000000))
probe() { # probe ID ADDR PORT SECONDS MICROSECONDS (the timeout twice)
  local line out='' rc='' us=''
  exec 4< <(exec 2>&1; echo start; s=$EPOCHREALTIME; : 3<>"/dev/tcp/$2/$3"; rc=$?; e=$EPOCHREALTIME; echo "@$rc $(( ${e/./} - ${s/./} ))")
  # The connect may take up to TIMEOUT to start, whatever the timeout of the probe.
  if read -r -t "$TS" line <&4; then
    while read -r -t "$4" line <&4; do
      case $line in @*) rc=${line%% *}; rc=${rc#@}; us=${line#* }; break ;; esac
      out="$out $line"
    done
  fi
  [ -n "$rc" ] || { kill $! 2>/dev/null; echo "$1 timeout $5"; return; }
  case $us in ""|*[!0-9]*) us=0 ;; esac
  case $rc:$out in
  0:*) echo "$1 connected $us" ;;
  *"Connection refused"*) echo "$1 refused $us" ;;
  *) echo "$1 error exit $rc:$out" ;;
  esac
}
phase() { # phase N MICROSECONDS: every probe of phase N, B at once
  local ph=$1 t=$2 n=0 ts
  printf -v ts "%d.%06d" $((t / 1000000)) $((t % 1000000))
  for line in "${lines[@]}"; do
    # shellcheck disable=SC2086 # the line is four words, checked above
    set -- $line
    [ "$4" = "$ph" ] || continue
    probe "$1" "$2" "$3" "$ts" "$t" &
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
# adapt SLOWEST: the timeout of phase 2, from the slowest answer of phase 1
# in microseconds (0: none). It is remote.AdaptiveTimeout, which the
# controller's own probes use, written again in bash because the host
# decides between its two phases, without a round trip; a test holds the
# two to the same answers.
adapt() {
  local s=$1 t
  [ "$s" -gt 0 ] || s=$H
  if [ "$s" -le 0 ]; then
    echo "$T"
    return
  fi
  t=$((s * K))
  [ "$t" -ge "$F" ] || t=$F
  [ "$t" -le "$T" ] || t=$T
  echo "$t"
}
# calibrate passes phase 1's "ID RESULT MICROSECONDS" lines on and sets
# slowest to the slowest answer among them (0: none).
calibrate() {
  slowest=0
  while read -r id result us; do
    [ -n "$id" ] || continue
    echo "$id $result $us"
    case $result in connected|refused) [ "$us" -le "$slowest" ] || slowest=$us ;; esac
  done
}
calibrate <<< "$(phase 1 "$T")"
t2=$(adapt "$slowest")
echo "timeout $t2"
phase 2 "$t2"
