package remote

// The scripts fwpush runs on a host, one per step. Every one is a constant:
// no inventory or template value is ever put on a command line. Data
// (rules, the rollback delay, the run's token, the digest) travels on stdin
// as one frame: a header line of numbers (see frame), then the payloads, read
// with head -c, which reads no further than the bytes it is asked for.
//
// Files on a host:
//   /run/fwpush/lock/owner   the host lock: "TOKEN EXPIRES" and who holds it (see scriptApply)
//   /run/fwpush/current      the token of the run that applied last: older guards stand down
//   /run/fwpush/runs/TOKEN/  a run's files: new.v4, old.v4, its guard, its outcome, ...
//   /var/lib/fwpush/applied  the digest of the policy fwpush last applied (drift detection)
//   /etc/iptables/rules.v4   persistence, loaded at boot by iptables-persistent
//   /etc/iptables/rules.v6
//
// Exit statuses 10 and above name the step that failed (see stages); a
// script that has something to report on stdout exits 0.

// Section markers of scriptFacts' output.
const (
	markPrefix = "@@fwpush:"
	markSuffix = "@@"
)

// scriptFacts gathers, in one round trip, everything a run needs to decide
// whether to change a host: the tools, the backend, the interfaces, where
// our SSH session comes from, the live rules, the persisted rules and what
// fwpush applied last, and what else manages the firewall there. It
// changes nothing and forks as little as it can: it runs on every host on
// every run.
//
// The other backend's filter table: on an nf_tables host, the legacy one
// exists only once something used it in this network namespace
// (/proc/net/ip_tables_names lists it, with no fork); only then is it
// saved: saving it when it is not there would create it. On a legacy host
// iptables-nft-save tells. Other firewall managers: ufw enabled in its
// configuration; firewalld or nftables enabled (a symlink in a .wants
// directory: nftables.service loads /etc/nftables.conf at boot) or, where
// systemd runs and their unit exists, active: one systemctl for both.
//
// A run decided but without an outcome yet may be a guard in the middle of
// its rollback (it decides, then restores under the run's lock): the read
// waits for that lock first, or it would take rules about to be replaced
// for the live ones and a rollback that is not listed as a guard any more
// would undo this run's verdict.
const scriptFacts = `PATH=$PATH:/usr/sbin:/sbin
m() { echo "@@fwpush:$1@@"; }
for d in /run/fwpush/runs/*; do
  [ -e "$d/decided" ] && [ ! -e "$d/outcome" ] && flock -w 10 "$d/lock" true
done
m tools; for t in iptables-restore ip6tables-restore iptables-save ip6tables-save; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done
m backend; b=$(iptables -V 2>&1); echo "$b"
m links; for l in /sys/class/net/*; do echo "${l##*/}"; done
m addrs; ip -o addr show 2>/dev/null
m conn; echo "${SSH_CONNECTION:-}"
m v4; iptables-save -t filter 2>&1 || echo "@@fwpush:error@@"
m v6; ip6tables-save -t filter 2>&1 || echo "@@fwpush:error@@"
m persisted4; cat /etc/iptables/rules.v4 2>/dev/null
m persisted6; cat /etc/iptables/rules.v6 2>/dev/null
m applied; cat /var/lib/fwpush/applied 2>/dev/null
m persistent; [ -x /usr/sbin/netfilter-persistent ] && [ -e /usr/share/netfilter-persistent/plugins.d/15-ip4tables ] && echo yes
m lock; [ -r /run/fwpush/lock/owner ] && { cat /run/fwpush/lock/owner; date +%s; }
m guards; for d in /run/fwpush/runs/*; do
  [ -e "$d/guard.pid" ] && [ ! -e "$d/decided" ] || continue
  echo "${d##*/} $(cat "$d/applied.status" 2>/dev/null || echo none) $(cat "$d/started" 2>/dev/null || echo 0) $(cat "$d/fire_at" 2>/dev/null || echo 0) $(date +%s)"
done
other() { # other iptables ip_tables_names: the filter table of the backend iptables does not use, if it has one
  o=
  case $b in
  *nf_tables*) [ -r "/proc/net/$2" ] && while read -r t; do [ "$t" != filter ] || o=$1-legacy-save; done < "/proc/net/$2" ;;
  *legacy*) o=$1-nft-save ;;
  esac
  [ -n "$o" ] && command -v "$o" >/dev/null 2>&1 && { echo "$o"; "$o" -t filter 2>/dev/null; }
}
m other4; other iptables ip_tables_names
m other6; other ip6tables ip6_tables_names
m managers
[ -r /etc/ufw/ufw.conf ] && while IFS= read -r l; do case $l in ENABLED=yes|ENABLED=\"yes\") echo "ufw conf" ;; esac; done < /etc/ufw/ufw.conf
for n in firewalld nftables; do for w in /etc/systemd/system/*.wants/$n.service; do [ -e "$w" ] && echo "$n enabled $w"; done; done
if [ -d /run/systemd/system ]; then
  u=
  for n in firewalld nftables; do for d in /etc/systemd/system /run/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    [ -e "$d/$n.service" ] && { u="$u $n"; break; }
  done; done
  [ -z "$u" ] || { echo "units$u"; systemctl is-active $u 2>/dev/null; }
fi
m end
`

// scriptApply takes the host lock, stages the new rules, asks iptables
// itself whether they load, saves the current rules, arms the guard,
// starts the apply and waits for it: one round trip. Its stdin: "TOKEN
// SECONDS LEASE WAIT NW N4 N6", then who runs it (NW bytes, for messages),
// new.v4 (N4 bytes) and new.v6. It prints "armed", then how the apply went:
// ok, failed, skipped (the guard was first) or pending (still running after
// SECONDS).
//
// The host lock is a directory: one run at a time changes a host, from its
// apply to its confirm (which releases it), or to its guard's rollback. A
// second run waits for it up to WAIT seconds, then fails saying who holds
// it. The holder's lease ends LEASE seconds after it took the lock; a lease
// that ended (its run died with no guard left to release it) is taken
// over. Until the guard is armed, any failure releases the lock.
//
// The rules are tested one family at a time (iptables-nft-restore --test is
// unreliable with several tables at once), waiting for the xtables lock
// rather than failing. They are loaded with --noflush: new.v4 flushes the
// chains the policy owns itself (see policy.Split), so that chains of
// other software (Docker, fail2ban) keep their rules. The old rules are
// restored whole.
//
// Both the guard and the apply run detached (setsid, no stdio), so that
// neither depends on the SSH session that started them: the new policy may
// cut that very session. The guard sleeps SECONDS, then restores the old
// rules unless fwpush has confirmed by then. Confirming and rolling back
// race for one mkdir of decided, so exactly one of them wins; the apply and
// the restore hold the run's lock file, so a guard that fires while the
// apply still waits for the xtables lock makes the apply skip, and a late
// apply can never land after a rollback. A guard whose run is no longer
// the current one (a newer run applied since) does nothing.
const scriptApply = `PATH=$PATH:/usr/sbin:/sbin
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
`

// scriptPersist writes what makes the policy survive a reboot and records
// what was applied, each only when asked (a size of 0 keeps the file as it
// is). Its stdin: "N4 N6 ND INSTALL", then rules.v4 (N4 bytes), rules.v6
// and the digest. The files are written atomically (a temporary file in the
// same directory, then rename) and go first: installing iptables-persistent
// starts netfilter-persistent, which loads whatever rules.v4 is on disk; an
// old file there would replace the policy just applied (and could cut
// SSH). apt runs without questions (it must not save the rules of the
// moment: fwpush writes its own files), waiting for the dpkg lock instead of
// failing when apt is busy. The state goes last, so that a run that failed
// half-way is not taken for done.
const scriptPersist = `PATH=$PATH:/usr/sbin:/sbin
set -u
read -r n4 n6 nd install || { echo "no header on stdin" >&2; exit 10; }
case $n4:$n6:$nd:$install in *[!0-9:]*|:*|*::*|*:) echo "bad header" >&2; exit 10 ;; esac
` + persistBody

// persistBody is the part of scriptPersist that scriptConfirm shares: it
// expects $n4 $n6 $nd $install read from the header, and the payloads next
// on stdin.
const persistBody = `umask 022
put() { # put SIZE DIR NAME: stdin's next SIZE bytes become DIR/NAME, atomically
  mkdir -p "$2" && head -c "$1" > "$2/.$3.fwpush" && [ "$(wc -c < "$2/.$3.fwpush")" -eq "$1" ] && mv -f "$2/.$3.fwpush" "$2/$3"
}
if [ "$n4" -gt 0 ]; then put "$n4" /etc/iptables rules.v4 || exit 20; fi
if [ "$n6" -gt 0 ]; then put "$n6" /etc/iptables rules.v6 || exit 21; fi
if [ "$nd" -gt 0 ]; then
  mkdir -p /var/lib/fwpush && head -c "$nd" > /var/lib/fwpush/.applied.fwpush || exit 23
fi
if [ "$install" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  { printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\niptables-persistent iptables-persistent/autosave_v6 boolean false\n' | debconf-set-selections &&
    apt-get -o DPkg::Lock::Timeout=300 -qq update &&
    apt-get -o DPkg::Lock::Timeout=300 -qq -y install iptables-persistent; } </dev/null >&2 || exit 22
fi
if [ "$nd" -gt 0 ]; then mv -f /var/lib/fwpush/.applied.fwpush /var/lib/fwpush/applied || exit 23; fi
echo persisted
`

// scriptConfirm runs over a fresh connection, which proves that the host
// still accepts new SSH connections. Its stdin: "TOKEN TICKS N4 N6 ND
// INSTALL", then the payloads of scriptPersist. It waits on the host, at
// most TICKS × 20 ms, for the detached apply to finish, then prints the
// outcome on its first line: "confirmed" (the apply succeeded and the guard
// is disarmed), "pending" (the apply has not finished, or the guard is
// restoring the old rules), "failed" (followed by the apply's log; the old
// rules are back and the guard is disarmed), "rolledback" (the guard won
// and the old rules are back) or "superseded" (another run took over).
// Only once confirmed does it go on to persist, in the same round trip.
const scriptConfirm = `PATH=$PATH:/usr/sbin:/sbin
set -u
read -r token ticks n4 n6 nd install || { echo "no header on stdin" >&2; exit 10; }
case $token in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
case $ticks:$n4:$n6:$nd:$install in *[!0-9:]*|:*|*::*|*:) echo "bad header" >&2; exit 10 ;; esac
R=/run/fwpush/runs/$token L=/run/fwpush/lock
[ -d "$R" ] || { echo superseded; exit 0; }
release() { o=; read -r o oe < "$L/owner" 2>/dev/null; [ "$o" != "$token" ] || rm -rf "$L"; }
# The guard and its sleep: setsid made them a process group.
stopguard() { kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null; }
# Whoever decided writes outcome once it is settled: the old rules back
# (rolledback), the rules kept by a later run that found them right (kept),
# or confirmed by a confirm whose answer was lost. Until then the host is
# pending, however it is going.
decided() {
  j=0
  while [ ! -e "$R/outcome" ] && [ "$j" -lt 250 ]; do sleep 0.02; j=$((j+1)); done
  case "$(cat "$R/outcome" 2>/dev/null)" in
  rolledback) echo rolledback; exit 0 ;;
  kept|confirmed) echo confirmed ;;
  *) echo pending; exit 0 ;;
  esac
}
i=0
while [ ! -e "$R/applied.status" ] && [ ! -e "$R/decided" ] && [ "$i" -lt "$ticks" ]; do sleep 0.02; i=$((i+1)); done
case "$(cat "$R/applied.status" 2>/dev/null)" in
ok)
  if mkdir "$R/decided" 2>/dev/null; then
    stopguard
    echo confirmed > "$R/outcome"
    echo confirmed
  else
    decided
  fi ;;
failed)
  mkdir "$R/decided" 2>/dev/null && { stopguard; echo failed > "$R/outcome"; }
  release
  echo failed; cat "$R/apply.log" 2>/dev/null; exit 0 ;;
skipped)
  decided ;;
*)
  if [ -e "$R/decided" ]; then decided; else echo pending; exit 0; fi ;;
esac
trap release EXIT
` + persistBody

// scriptSettle decides the fate of the apply of an earlier run whose
// fwpush is gone (killed before it confirmed): KEEP 1 keeps its rules (they
// are the ones this run would apply) and disarms its guard; 0 restores the
// old rules now rather than when its guard wakes. Either way the host lock
// it held is released. Its stdin: "TOKEN KEEP". It prints the outcome:
// kept, rolledback, confirmed or failed (its own confirm came first), or
// gone (nothing of that run is left).
const scriptSettle = `PATH=$PATH:/usr/sbin:/sbin
set -u
read -r token keep || { echo "no header on stdin" >&2; exit 10; }
case $token in ""|*[!0-9a-f]*) echo "bad token" >&2; exit 10 ;; esac
case $keep in 0|1) ;; *) echo "bad header" >&2; exit 10 ;; esac
R=/run/fwpush/runs/$token L=/run/fwpush/lock
[ -d "$R" ] || { echo gone; exit 0; }
if [ "$keep" = 1 ]; then
  (
    exec 9>"$R/lock"
    flock 9
    if mkdir "$R/decided" 2>/dev/null; then
      kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null
      echo kept > "$R/outcome"
    fi
  )
else
  sh "$R/restore.sh" "$token"
  kill -s TERM -- "-$(cat "$R/guard.pid")" 2>/dev/null
fi
o=; read -r o oe < "$L/owner" 2>/dev/null; [ "$o" != "$token" ] || rm -rf "$L"
cat "$R/outcome" 2>/dev/null || echo gone
`

// scriptProbe connects, on the host it runs on, to every "ID ADDR PORT
// PHASE" line of its stdin and prints one "ID RESULT MICROSECONDS" line per
// probe: connected, refused, timeout, or "error exit N: what bash said".
// Its first stdin line is "TIMEOUT BATCH FLOOR FACTOR HINT" (microseconds,
// probes at once, microseconds, a multiple, microseconds).
//
// Probes of phase 1 (the ones expected to be reachable) go first, each
// allowed TIMEOUT. Their answers measure this host's round-trip time, as
// nmap does: phase 2 (the ones expected to be filtered, which can only end
// by timing out) then waits FACTOR × the slowest answer, at least FLOOR and
// at most TIMEOUT. A host with nothing to make in phase 1 uses HINT, a
// round trip fwpush measured to it, instead (0: none); one whose phase 1
// got no answer gives phase 2 the whole TIMEOUT, so a slow link is never
// cut short. The timeout used is printed
// as "timeout MICROSECONDS".
//
// It needs nothing a minimal Debian server lacks: bash's /dev/tcp and
// $EPOCHREALTIME, coreutils' timeout. The addresses reach the connecting
// shell as arguments, never as code.
const scriptProbe = `PATH=$PATH:/usr/bin:/bin
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
`
