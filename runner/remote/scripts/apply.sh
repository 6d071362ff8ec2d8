# apply.sh takes the host lock, stages the new rules, asks iptables
# itself whether they load, saves the current rules, arms the guard,
# starts the apply and waits for it: one round trip. Its stdin: "TOKEN
# SECONDS LEASE WAIT N4 N6 NSTAGE NSWAP NCLEAN NDROP INSTALL HN RESULT
# HMAX WHO", then new.v4 (N4 bytes) and new.v6, then the ipset documents
# of the run's sets (see ipsets.sh), then the body of the run's history
# line (HN bytes; RESULT and HMAX as the confirm's: see keephistory in
# record.sh), each followed by the mark (see lib.sh); INSTALL 1
# installs the ipset package first, where ipset is missing; WHO, the rest
# of the line, is who runs it, for messages. It prints "armed FIRE NOW", the time
# the guard fires and the time it is, in seconds since the epoch by the
# host's clock (the report gives the guard's real time), then how the apply went: ok,
# failed, skipped (the run was decided before its apply began) or pending
# (still running after SECONDS). $guard, the program of the apply and its
# guard (lib.sh and guard.sh), comes first (see scripts.go).
#
# The host lock is a directory: one run at a time changes a host, from its
# apply to its confirm (which releases it), or to its guard's rollback. A
# second run waits for it up to WAIT seconds, then fails saying who holds
# it. The holder's lease ends LEASE seconds after it took the lock; a lease
# that ended (its run died with no guard left to release it) is taken
# over. Until the guard is armed, any failure releases the lock. Waiting
# blocks (take): on a read of the FIFO $F/lock.free, which whoever
# releases the lock writes to, and on one sleep until the lease or the
# wait ends, whose end (SIGCHLD) interrupts the read.
#
# The sets the new rules match are staged before the rules are tested
# (iptables refuses a rule that matches a set that does not exist), and
# what the stage made goes again if anything fails before the guard is
# armed (see ipsets.sh): the host is as it was.
#
# The rules are tested one family at a time (iptables-nft-restore --test is
# unreliable with several tables at once), waiting for the xtables lock
# rather than failing. They are loaded with --noflush: new.v4 flushes the
# chains the policy owns itself (see policy.Split), so that chains of
# other software (Docker, fail2ban) keep their rules. The old rules are
# restored whole.
#
# The apply and its guard run detached (setsid, no stdio), one process
# (guard.sh), so that neither depends on the SSH session that started
# them: the new policy may cut that very session. The guard sleeps
# SECONDS, then restores the old rules unless fwpush has confirmed by then.
# Confirming and rolling back race to create decided, so exactly one of
# them wins. The run's lock is taken here, before the guard is armed, and
# handed to the apply, which lets it go once done; a restore takes it, so
# a late apply can never land after a rollback; and this script waits for
# the apply by waiting for that lock: its outcome is known before the proof
# that SSH still works is tried, so that the proof comes from a connection
# made under the new rules. Should the new rules cut this session, the
# output is lost and the guard decides. A guard whose run is no longer the
# current one (a newer run applied since) does nothing.
set -u
umask 077
read -r token secs lease wait n4 n6 nstage nswap nclean ndrop install hn result hmax who || { echo "no header on stdin" >&2; exit 10; }
hex "$token"
nums "$secs" "$lease" "$wait" "$n4" "$n6" "$nstage" "$nswap" "$nclean" "$ndrop" "$install" "$hn" "$hmax"
resultok "$result"
case $who in *[![:print:]]*) who='?' ;; esac
R=$F/runs/$token

acquire
cd "$R" || exit 11
if ! payload "$n4" new.v4 || ! payload "$n6" new.v6; then
  echo "stdin ended early" >&2
  exit 10
fi
getsets "$nstage" "$nswap" "$nclean" "$ndrop" || { echo "stdin ended early" >&2; exit 10; }
keephistory
if [ "$install" = 1 ] && ! command -v ipset > /dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get -o DPkg::Lock::Timeout=300 -qq update &&
    apt-get -o DPkg::Lock::Timeout=300 -qq -y --no-install-recommends install ipset; } < /dev/null >&2 || exit 19
fi
stagesets || exit 16
iptables-restore -w --noflush --test < new.v4 || exit 12
ip6tables-restore -w --noflush --test < new.v6 || exit 13

if ! save iptables-save old.v4 || ! save ip6tables-save old.v6; then
  echo "cannot save the current rules" >&2
  exit 14
fi

arm
