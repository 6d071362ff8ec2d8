# persist.sh persists for a host whose live rules already match (see
# store.sh). Its stdin: "N4 N6 NSETS DIGEST INSTALL HN RESULT HMAX NFIRST",
# then the body of the history line (HN bytes, see record.sh), rules.v4 (N4
# bytes), rules.v6, ipsets and the ipsets written first, each followed by
# the mark. The history records RESULT once persisted, failed if not.
set -u
read -r n4 n6 nsets digest install hn result hmax nfirst || { echo "no header on stdin" >&2; exit 10; }
nums "$n4" "$n6" "$nsets" "$install" "$hn" "$hmax" "$nfirst"
digestok "$digest"
resultok "$result"
readhistory
trap '[ "$?" -eq 0 ] || record failed' EXIT
store
record "$result"
