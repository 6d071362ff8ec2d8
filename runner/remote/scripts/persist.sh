# scriptPersist writes what makes the policy survive a reboot and records
# what was applied, each only when asked (a size of 0 keeps the file as it
# is). Its stdin: "N4 N6 ND INSTALL", then rules.v4 (N4 bytes), rules.v6
# and the digest. The files are written atomically (a temporary file in the
# same directory, then rename) and go first: installing iptables-persistent
# starts netfilter-persistent, which loads whatever rules.v4 is on disk; an
# old file there would replace the policy just applied (and could cut
# SSH). apt runs without questions (it must not save the rules of the
# moment: fwpush writes its own files), waiting for the dpkg lock instead of
# failing when apt is busy. The state goes last, so that a run that failed
# half-way is not taken for done.
PATH=$PATH:/usr/sbin:/sbin
set -u
read -r n4 n6 nd install || { echo "no header on stdin" >&2; exit 10; }
case $n4:$n6:$nd:$install in *[!0-9:]*|:*|*::*|*:) echo "bad header" >&2; exit 10 ;; esac
