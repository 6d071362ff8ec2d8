# probe.sh connects, on the host it runs on, to every "ID ADDR PORT
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
# It needs nothing a minimal Debian server lacks: bash (5.0 or later) for
# /dev/tcp and $EPOCHREALTIME. This file checks for it under sh,
# then runs probe.bash with bash (see scripts.go). The addresses reach the
# connecting shell as arguments, never as code.
PATH=$PATH:/usr/bin:/bin
command -v bash >/dev/null 2>&1 || { echo "bash is not installed: fwpush probes with bash's /dev/tcp" >&2; exit 3; }
