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
# even connected would be reported filtered. So each probe is one fork of
# the script's shell, no new program: its connect runs in a process
# substitution that says when it starts; a batch's probes all start, then
# the shell reads their answers in turn, each waited for until its own
# connect's start plus the timeout (and for its start, until the batch's
# plus TIMEOUT), so that reading them one after another waits no longer
# than reading them at once would.
# start ID ADDR PORT: starts one probe of the batch.
start() {
  local fd
  exec {fd}< <(exec 2>&1; s=$EPOCHREALTIME; echo "start ${s/./}"; : 3<>"/dev/tcp/$2/$3"; rc=$?; e=$EPOCHREALTIME; echo "@$rc $(( ${e/./} - ${s/./} ))")
  ids+=("$1") fds+=("$fd") pids+=("$!")
}
# readby FD END: reads a line of FD into line, waiting for it until END
# (microseconds of the epoch). A line there already is read whatever the
# time: read -t given a few microseconds times out without reading what
# is there, or may time out half-way through a line (keeping its start in
# line). A probe writes each of its lines at once.
readby() {
  local left=$(( $2 - ${EPOCHREALTIME/./} )) secs rest
  line=''
  if [ "$left" -ge 1000 ]; then
    printf -v secs "%d.%06d" $((left / 1000000)) $((left % 1000000))
    read -r -t "$secs" line <&"$1" && return 0
    [ $? -gt 128 ] || return 1 # the end of the probe's output
  fi
  read -r -t 0 <&"$1" || return 1
  read -r -t 1 rest <&"$1" || return 1
  line=$line$rest
}
# collect MICROSECONDS BATCH: the answer of every probe started (at
# BATCH, in microseconds of the epoch), each waited for that long from its
# connect; then the batch is empty.
collect() {
  local t=$1 b=$2 i fd out rc us end
  for i in "${!ids[@]}"; do
    fd=${fds[i]} out='' rc='' us=''
    if readby "$fd" $((b + T)) && [ "${line%% *}" = start ]; then
      end=$((${line#start } + t))
      while readby "$fd" "$end"; do
        case $line in @*) rc=${line%% *}; rc=${rc#@}; us=${line#* }; break ;; esac
        out="$out $line"
      done
    fi
    exec {fd}<&-
    if [ -z "$rc" ]; then
      kill "${pids[i]}" 2>/dev/null
      echo "${ids[i]} timeout $t"
      continue
    fi
    case $us in ""|*[!0-9]*) us=0 ;; esac
    case $rc:$out in
    0:*) echo "${ids[i]} connected $us" ;;
    *"Connection refused"*) echo "${ids[i]} refused $us" ;;
    *) echo "${ids[i]} error exit $rc:$out" ;;
    esac
  done
  ids=() fds=() pids=()
}
phase() { # phase N MICROSECONDS: every probe of phase N, B at once
  local ph=$1 t=$2 n=0 batch l
  ids=() fds=() pids=()
  batch=${EPOCHREALTIME/./}
  for l in "${lines[@]}"; do
    # shellcheck disable=SC2086 # the line is four words, checked above
    set -- $l
    [ "$4" = "$ph" ] || continue
    start "$1" "$2" "$3"
    n=$((n+1))
    if [ $((n % B)) -eq 0 ]; then
      collect "$t" "$batch"
      batch=${EPOCHREALTIME/./}
    fi
  done
  collect "$t" "$batch"
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
