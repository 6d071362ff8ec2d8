# scriptApply takes the host lock, stages the new rules, asks iptables
# itself whether they load, saves the current rules, arms the guard,
# starts the apply and waits for it: one round trip. Its stdin: "TOKEN
# SECONDS LEASE WAIT NW N4 N6", then who runs it (NW bytes, for messages),
# new.v4 (N4 bytes) and new.v6. It prints "armed", then how the apply went:
# ok, failed, skipped (the guard was first) or pending (still running after
# SECONDS).
#
# The host lock is a directory: one run at a time changes a host, from its
# apply to its confirm (which releases it), or to its guard's rollback. A
# second run waits for it up to WAIT seconds, then fails saying who holds
# it. The holder's lease ends LEASE seconds after it took the lock; a lease
# that ended (its run died with no guard left to release it) is taken
# over. Until the guard is armed, any failure releases the lock.
#
# The rules are tested one family at a time (iptables-nft-restore --test is
# unreliable with several tables at once), waiting for the xtables lock
# rather than failing. They are loaded with --noflush: new.v4 flushes the
# chains the policy owns itself (see policy.Split), so that chains of
# other software (Docker, fail2ban) keep their rules. The old rules are
# restored whole.
#
# Both the guard and the apply run detached (setsid, no stdio), so that
# neither depends on the SSH session that started them: the new policy may
# cut that very session. The guard sleeps SECONDS, then restores the old
# rules unless fwpush has confirmed by then. Confirming and rolling back
# race for one mkdir of decided, so exactly one of them wins; the apply and
# the restore hold the run's lock file, so a guard that fires while the
# apply still waits for the xtables lock makes the apply skip, and a late
# apply can never land after a rollback. A guard whose run is no longer
# the current one (a newer run applied since) does nothing.
PATH=$PATH:/usr/sbin:/sbin
set -u
umask 077
F=/run/fwpush L=/run/fwpush/lock
read -r token secs lease wait nw n4 n6 || { echo "no header on stdin" >&2; exit 10; }
case $token in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
case $secs:$lease:$wait:$nw:$n4:$n6 in *[!0-9:]*|:*|*::*|*:) echo "bad header" >&2; exit 10 ;; esac
who=$(head -c "$nw" | tr -cd '[:print:]')
mkdir -p "$F/runs" || exit 11
i=0 got=
while :; do
  if mkdir "$L" 2>/dev/null; then got=1; break; fi
  o= oe=
  read -r o oe < "$L/owner" 2>/dev/null
  case $oe in ""|*[!0-9]*) ;; *) if [ "$(date +%s)" -gt "$oe" ]; then rm -rf "$L"; continue; fi ;; esac
  [ "$i" -lt $((wait * 5)) ] || break
  sleep 0.2; i=$((i+1))
done
if [ -z "$got" ]; then
  { printf 'another run of fwpush holds this host: '; tail -n +2 "$L/owner" 2>/dev/null | head -n 1; } >&2
  exit 15
fi
release() { o=; read -r o oe < "$L/owner" 2>/dev/null; [ "$o" != "$token" ] || rm -rf "$L"; }
trap release EXIT
printf '%s %s\n%s\n' "$token" $(( $(date +%s) + lease )) "$who" > "$L/owner"
for d in "$F"/runs/*; do [ ! -e "$d/decided" ] || rm -rf "$d"; done
R=$F/runs/$token
rm -rf "$R" && mkdir -p "$R" && cd "$R" || exit 11
head -c "$n4" > new.v4 && head -c "$n6" > new.v6 || exit 11
[ "$(wc -c < new.v4)" -eq "$n4" ] && [ "$(wc -c < new.v6)" -eq "$n6" ] || { echo "stdin ended early" >&2; exit 10; }
iptables-restore -w --noflush --test < new.v4 || exit 12
ip6tables-restore -w --noflush --test < new.v6 || exit 13
iptables-save -t filter > old.v4 && ip6tables-save -t filter > old.v6 || { echo "cannot save the current rules" >&2; exit 14; }
# A server that never had rules saves nothing: its "old rules" are an open filter table.
for f in old.v4 old.v6; do
  grep -q '^\*filter' "$f" || printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' > "$f"
done
cat > restore.sh <<'EOF'
# restore.sh TOKEN: the old rules back, unless the run was decided already.
cd /run/fwpush/runs/"$1" || exit 0
exec 9>lock
flock 9
mkdir decided 2>/dev/null || exit 0
iptables-restore -w < old.v4
ip6tables-restore -w < old.v6
echo rolledback > outcome
o=; read -r o oe < /run/fwpush/lock/owner 2>/dev/null; [ "$o" != "$1" ] || rm -rf /run/fwpush/lock
EOF
cat > apply.sh <<'EOF'
# apply.sh: the new rules, unless the guard was first; the old ones if they fail.
exec 9>lock
flock 9
if [ -e decided ]; then
  s=skipped
elif iptables-restore -w --noflush < new.v4 && ip6tables-restore -w --noflush < new.v6; then
  s=ok
else
  iptables-restore -w < old.v4; ip6tables-restore -w < old.v6; s=failed
fi
echo $s > applied.status.new && mv applied.status.new applied.status
EOF
echo "$token" > "$F/current.new" && mv "$F/current.new" "$F/current" || exit 11
now=$(date +%s)
echo "$now" > started && echo $((now + secs)) > fire_at || exit 11
setsid sh -c 'sleep "$1"; [ "$(cat /run/fwpush/current 2>/dev/null)" = "$2" ] && exec sh /run/fwpush/runs/"$2"/restore.sh "$2"' fwpush-guard "$secs" "$token" </dev/null >/dev/null 2>&1 &
echo $! > guard.pid
trap - EXIT
setsid sh apply.sh </dev/null >apply.log 2>&1 &
echo armed
# The apply takes a moment; its outcome is known before the proof that SSH
# still works is tried, so that the proof comes from a connection made
# under the new rules. Should the new rules cut this session, the output is
# lost and the guard decides.
i=0
while [ ! -e applied.status ] && [ "$i" -lt $((secs * 50)) ]; do sleep 0.02; i=$((i+1)); done
cat applied.status 2>/dev/null || echo pending
