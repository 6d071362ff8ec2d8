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
# is read with head -c, which reads no further than its size and stops
# short, silently, when stdin does; the mark after it tells.
mark() {
  m=
  IFS= read -r m && [ "$m" = "@@fwpush:end@@" ]
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
