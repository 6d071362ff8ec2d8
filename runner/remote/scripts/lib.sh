# lib.sh comes first in every step's script (see scripts.go): where the
# host's files are, and what the steps share. It defines and runs nothing
# else.
#
# The steps run under sh (dash on Debian): POSIX only. Every external
# command costs the host a process, on every host at every run, so the
# steps fork only where a builtin cannot do the job as cheaply: reading a
# short file, testing, writing a line, killing, are builtins; waiting is
# blocking (flock -w, a read of a FIFO), never a loop of sleeps.
#
# FWPUSH_TEST_ROOT is unset on hosts. Tests set it to a directory that
# stands for the host's /, with stub commands in its /usr/sbin.
r=${FWPUSH_TEST_ROOT-}
PATH=$PATH:$r/usr/sbin:$r/sbin
# Sizes and patterns are bytes (see payload); what the tools print, English.
LC_ALL=C

# nums V...: every V is a number, or the header is refused.
nums() {
  for v; do
    case $v in ""|*[!0-9]*) echo "bad header" >&2; exit 10 ;; esac
  done
}

# hex V: V is a run's token (lowercase hex), or the header is refused.
hex() {
  case $1 in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
}

# mark: the line that follows every payload on stdin is there. A payload
# read with head -c, which reads no further than its size, stops short,
# silently, when stdin does; the mark after it tells.
mark() {
  m=
  IFS= read -r m && [ "$m" = "@@fwpush:end@@" ]
}

# payload SIZE FILE: the next SIZE bytes of stdin, and the mark after
# them, into FILE; false if stdin ends first, or holds something else
# (its variables begin with t). A payload of up to 4 KiB (a host's rules
# usually are) is read with builtins, a system call a byte, which costs
# the host less than the fork and exec of head -c; a larger one with head.
# Each line read must fit in what is left: the last one, unless it ends
# the payload with a newline, runs on into the mark. The sizes are bytes:
# sh counts them in the C locale.
payload() {
  if [ "$1" -gt 4096 ]; then
    head -c "$1" > "$2" && mark
    return
  fi
  tn=$1 te=
  while [ "$tn" -gt 0 ] && [ -z "$te" ] && IFS= read -r tl; do
    if [ $((${#tl} + 1)) -le "$tn" ]; then
      printf '%s\n' "$tl" || return 1
      tn=$((tn - ${#tl} - 1))
    else
      tt=${tl%@@fwpush:end@@}
      [ "$tt@@fwpush:end@@" = "$tl" ] && [ "${#tt}" -eq "$tn" ] || return 1
      printf '%s' "$tt" || return 1
      te=1
    fi
  done > "$2" || return 1
  [ -n "$te" ] || { [ "$tn" -eq 0 ] && mark; }
}

# show FILE: FILE on stdout, ending with a newline, as cat would without
# a process; for short files (a builtin read takes a system call a byte).
show() {
  [ -r "$1" ] || return 0
  while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"
}

# digestok V: V is a digest of the policy, or - for none.
digestok() {
  case $1 in "" | *[!0-9A-Za-z:._-]*) echo "bad header" >&2; exit 10 ;; esac
}

# resultok V: V is what a history line says of a change that succeeded, or -
# when there is no line.
resultok() {
  case $1 in applied | drift_repaired | -) ;; *) echo "bad header" >&2; exit 10 ;; esac
}
