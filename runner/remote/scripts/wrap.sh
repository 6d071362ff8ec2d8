# wrap.sh begins the command that runs every step's script on a host (see
# wrap in remote.go): it reads the step's deadline, in seconds, off
# stdin's first line; the command goes on with an exec of the script under
# timeout(1), and sudo when the step needs root. A step with no data on
# stdin gets the deadline on its command line instead ("d=N" before the
# command, which then begins after the read): it sends nothing, and its
# answer comes a round trip sooner (see run in remote.go).
read -r d || exit 10
case $d in "" | *[!0-9]*) echo "bad deadline: $d" >&2; exit 10 ;; esac
