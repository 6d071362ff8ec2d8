# record.sh is what persist.sh and confirm.sh share to keep the host's
# history, /var/lib/fwpush/history: one JSON line per change fwpush made,
# appended in the round trip that learns how the change ended. The
# controller builds the line (see history.Entry.Body) and sends it on
# stdin; the host only adds its clock and the outcome. It expects $hn
# $result $hmax read from the header: the size of the line's body (0 for
# none: nothing is recorded), the outcome once the step succeeds, and the
# size past which the history is rotated.
#
# The history is bounded: past $hmax bytes it is renamed to history.1
# (rename(2): atomic; the history.1 before goes) before the next line is
# appended; history.size keeps its size, for no process to count it.
# Appending is one write with O_APPEND. Recording never fails the step:
# the change is made; a history that cannot be written says so on stderr.
# Only root reads it (fwpush history reads it under sudo, as run does): it
# says who changes the firewall, and when.

# readhistory: the body of the history line, next on stdin, in $h: one
# line, printable, that ends an object (the line is {"time":...,"outcome":...,
# then the body).
readhistory() {
  h=
  if [ "$hn" -gt 0 ]; then
    IFS= read -r h || { echo "stdin ended early" >&2; exit 10; }
    case $h in
    *[![:print:]]*) echo "bad history line" >&2; exit 10 ;;
    '"'*'}') ;;
    *) echo "bad history line" >&2; exit 10 ;;
    esac
    [ "${#h}" -eq $((hn - 1)) ] || { echo "bad history line" >&2; exit 10; }
  fi
  mark || { echo "stdin ended early" >&2; exit 10; }
}

# keephistory: the body of run $R's history line, next on stdin (see
# readhistory), kept by its apply in $R/history with the outcome it
# records once persisted and the size the history rotates at: a later run
# that settles this one, its fwpush gone, records the line this run's
# confirm would have (see settled).
keephistory() {
  readhistory
  [ -z "$h" ] || printf '%s %s\n%s\n' "$result" "$hmax" "$h" > "$R/history"
}

# settled [OUTCOME]: run $R's line, as its apply kept it, goes into the
# history with OUTCOME (by default the one it kept: its rules stay), for
# a settle that decided the run's fate. The run's own confirm, should its
# fwpush come back, then finds it recorded.
settled() {
  h='' result='' hmax=''
  { read -r result hmax && IFS= read -r h; } 2>/dev/null < "$R/history" || return 0
  case $hmax in '' | *[!0-9]*) return 0 ;; esac
  case ${1:-$result} in applied | drift_repaired | rolled_back) record "${1:-$result}" ;; esac
}

# record OUTCOME: the line goes into the history, with the host's time and
# OUTCOME, once per run ($R, when set): a confirm asked again after its
# answer was lost finds it recorded. The time is when run $R applied (the
# host's clock as its apply read it: no date(1) here), or now for a
# persist without a run. (echo, not the special builtin :, whose
# failed redirection would end the script.)
record() {
  [ -n "$h" ] || return 0
  if [ -n "${R-}" ]; then
    set -C
    if ! { echo > "$R/recorded"; } 2>/dev/null; then
      set +C
      return 0
    fi
    set +C
  fi
  H=$r/var/lib/fwpush/history
  umask 077
  { [ -d "${H%/*}" ] || mkdir -p "${H%/*}"; } || return 0
  # Its size: as the last append left it in history.size, unless the
  # history changed since (another program, an older fwpush): then wc.
  n=0
  if [ -s "$H" ]; then
    n=
    # shellcheck disable=SC3013 # -nt is POSIX since Issue 8 (2024), and dash, bash and busybox sh have it
    [ "$H" -nt "$H.size" ] || { read -r n < "$H.size"; } 2>/dev/null
    case $n in "" | *[!0-9]*) n=$(wc -c < "$H") || n=$hmax ;; esac
    [ "$n" -lt "$hmax" ] || { mv -f "$H" "$H.1" && n=0; }
  fi
  t=
  [ -z "${R-}" ] || { read -r t < "$R/started"; } 2>/dev/null
  case $t in
  "" | *[!0-9]*) t=$(date -u +%Y-%m-%dT%H:%M:%SZ) || t= ;;
  *) utc "$t" ;;
  esac
  t="{\"time\":\"$t\",\"outcome\":\"$1\",$h"
  if printf '%s\n' "$t" >> "$H"; then
    echo $((n + ${#t} + 1)) > "$H.size"
  else
    echo "cannot append to $H" >&2
  fi
}

# utc SECONDS: the time SECONDS after the epoch, in $t, as date -u
# +%Y-%m-%dT%H:%M:%SZ prints it, by arithmetic (days to a civil date as
# in Howard Hinnant's chrono algorithms, for times after 1970); its
# variables begin with u.
utc() {
  uz=$(($1 / 86400 + 719468))
  ue=$((uz / 146097))
  uz=$((uz - ue * 146097))
  uy=$(((uz - uz / 1460 + uz / 36524 - uz / 146096) / 365))
  uz=$((uz - (365 * uy + uy / 4 - uy / 100)))
  um=$(((5 * uz + 2) / 153))
  t=$((uz - (153 * um + 2) / 5 + 1))
  if [ "$um" -lt 10 ]; then um=$((um + 3)); else um=$((um - 9)); fi
  uy=$((uy + ue * 400))
  [ "$um" -gt 2 ] || uy=$((uy + 1))
  t="$uy-$((um / 10))$((um % 10))-$((t / 10))$((t % 10))"
  for ux in $(($1 % 86400 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); do
    t="$t:$((ux / 10))$((ux % 10))"
  done
  t="${t%%:*}T${t#*:}Z"
}
