package runner

// The commands fwpush runs on a host. Every one is a constant: no
// inventory or template value is ever put on a command line. Data (rules,
// the rollback delay, the run's token) travels on stdin into files under
// /run/fwpush, and the scripts read it from there.
//
// Files on a host:
//   /run/fwpush/run/       this run's transient files (new.v4, old.v4, token, ...)
//   /var/lib/fwpush/applied the digest of the policy fwpush last applied (drift detection)
//   /etc/iptables/rules.v4  persistence, loaded at boot by iptables-persistent
//   /etc/iptables/rules.v6

// Section markers of cmdFacts' output.
const (
	markPrefix = "@@fwpush:"
	markSuffix = "@@"
)

// cmdFacts gathers, in one round trip, everything a run needs to decide
// whether to change a host: the tools, the backend, the interfaces, where
// our SSH session comes from, the live rules, the persisted rules and what
// fwpush applied last. It changes nothing.
const cmdFacts = `PATH=$PATH:/usr/sbin:/sbin
m() { echo "@@fwpush:$1@@"; }
m tools; for t in iptables-restore ip6tables-restore iptables-save ip6tables-save; do command -v "$t" >/dev/null 2>&1 && echo "$t"; done
m backend; iptables -V 2>&1 | head -n 1
m links; ls /sys/class/net 2>/dev/null
m addrs; ip -o addr show 2>/dev/null
m conn; echo "${SSH_CONNECTION:-}"
m v4; iptables-save -t filter 2>&1 || echo "@@fwpush:error@@"
m v6; ip6tables-save -t filter 2>&1 || echo "@@fwpush:error@@"
m persisted4; cat /etc/iptables/rules.v4 2>/dev/null
m persisted6; cat /etc/iptables/rules.v6 2>/dev/null
m applied; cat /var/lib/fwpush/applied 2>/dev/null
m persistent; dpkg-query -W -f='${Status}\n' iptables-persistent 2>/dev/null
m end
`

// Uploads: each reads one file's content from stdin. The run directory is
// made afresh by cmdPrepare, so nothing of an earlier run is reused.
const (
	cmdPrepare = `umask 077 && rm -rf /run/fwpush/run && mkdir -p /run/fwpush/run && cat > /run/fwpush/run/token`
	cmdPutV4   = `umask 077 && cat > /run/fwpush/run/new.v4`
	cmdPutV6   = `umask 077 && cat > /run/fwpush/run/new.v6`
	cmdPutWait = `umask 077 && cat > /run/fwpush/run/rollback_after`
)

// cmdTest asks iptables itself whether the new rules load, one table and
// one family at a time (iptables-nft-restore --test is unreliable with
// several tables at once), waiting for the xtables lock rather than failing.
const cmdTest = `PATH=$PATH:/usr/sbin:/sbin
iptables-restore -w --noflush --test < /run/fwpush/run/new.v4 && ip6tables-restore -w --noflush --test < /run/fwpush/run/new.v6`

// cmdApply saves the current rules, arms the guard and applies the new
// rules. They are loaded with --noflush: new.v4 flushes the chains the
// policy owns itself (see policy.Foreign), so that chains of other software
// (Docker, fail2ban) keep their rules. The old rules are restored whole.
//
// Both the guard and the apply run detached (setsid, no stdio), so that
// neither depends on the SSH session that started them: the new policy may
// cut that very session. The guard sleeps rollback_after seconds, then
// restores the old rules unless fwpush has confirmed by then. Confirming
// and rolling back race for one mkdir of run/decided, so exactly one of
// them wins; the apply and the guard's restore hold run/lock, so a guard
// that fires while the apply still waits for the xtables lock makes the
// apply skip, and a late apply can never land after a rollback. A guard
// whose token is no longer the run's (a newer run took over) does nothing.
const cmdApply = `PATH=$PATH:/usr/sbin:/sbin
set -u
R=/run/fwpush/run
cd "$R" || exit 1
iptables-save -t filter > old.v4 && ip6tables-save -t filter > old.v6 || { echo "cannot save the current rules" >&2; exit 1; }
# A server that never had rules saves nothing: its "old rules" are an open filter table.
for f in old.v4 old.v6; do
  grep -q '^\*filter' "$f" || printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n' > "$f"
done
setsid sh -c '
  sleep "$1"
  [ "$(cat /run/fwpush/run/token 2>/dev/null)" = "$2" ] || exit 0
  exec flock /run/fwpush/run/lock sh -c "
    mkdir /run/fwpush/run/decided 2>/dev/null || exit 0
    iptables-restore -w < /run/fwpush/run/old.v4
    ip6tables-restore -w < /run/fwpush/run/old.v6
    echo rolledback > /run/fwpush/run/outcome"
' fwpush-guard "$(cat rollback_after)" "$(cat token)" </dev/null >/dev/null 2>&1 &
echo $! > guard.pid
setsid flock /run/fwpush/run/lock sh -c '
  cd /run/fwpush/run
  if [ -e decided ]; then
    echo skipped > applied.status
  elif iptables-restore -w --noflush < new.v4 && ip6tables-restore -w --noflush < new.v6; then
    echo ok > applied.status
  else
    iptables-restore -w < old.v4; ip6tables-restore -w < old.v6
    echo failed > applied.status
  fi
' </dev/null >/run/fwpush/run/apply.log 2>&1 &
echo armed`

// cmdConfirm is run over a fresh connection, which proves the host still
// accepts new SSH connections. Its first line is the outcome: "confirmed"
// (the apply succeeded and the guard is disarmed), "pending" (the apply
// has not finished: ask again), "failed" (followed by the apply's log; the
// old rules are back and the guard is disarmed), or "rolledback" (the
// guard won).
const cmdConfirm = `R=/run/fwpush/run
case "$(cat "$R/applied.status" 2>/dev/null)" in
ok)
  if mkdir "$R/decided" 2>/dev/null; then
    kill "$(cat "$R/guard.pid")" 2>/dev/null
    echo confirmed
  else
    echo rolledback
  fi ;;
failed)
  mkdir "$R/decided" 2>/dev/null
  kill "$(cat "$R/guard.pid")" 2>/dev/null
  echo failed; cat "$R/apply.log" 2>/dev/null ;;
skipped)
  echo rolledback ;;
*)
  if [ -e "$R/decided" ]; then echo rolledback; else echo pending; fi ;;
esac
true`

// cmdInstallPersistent installs iptables-persistent without questions
// (it must not save the rules of the moment: fwpush writes its own files)
// and waits for the dpkg lock instead of failing when apt is busy.
const cmdInstallPersistent = `PATH=$PATH:/usr/sbin:/sbin
export DEBIAN_FRONTEND=noninteractive
printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\niptables-persistent iptables-persistent/autosave_v6 boolean false\n' | debconf-set-selections &&
apt-get -o DPkg::Lock::Timeout=300 -qq update &&
apt-get -o DPkg::Lock::Timeout=300 -qq -y install iptables-persistent`

// Persistence and state, written atomically: a temporary file, then rename.
const (
	cmdPersistV4 = `umask 022 && mkdir -p /etc/iptables && cat > /etc/iptables/.rules.v4.fwpush && mv -f /etc/iptables/.rules.v4.fwpush /etc/iptables/rules.v4`
	cmdPersistV6 = `umask 022 && mkdir -p /etc/iptables && cat > /etc/iptables/.rules.v6.fwpush && mv -f /etc/iptables/.rules.v6.fwpush /etc/iptables/rules.v6`
	cmdState     = `umask 022 && mkdir -p /var/lib/fwpush && cat > /var/lib/fwpush/.applied && mv -f /var/lib/fwpush/.applied /var/lib/fwpush/applied`
)
