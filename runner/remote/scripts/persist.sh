# persist.sh persists for a host whose live rules already match (see
# store.sh). Its stdin: "N4 N6 NSETS DIGEST INSTALL", then rules.v4 (N4
# bytes), rules.v6 and ipsets, each followed by the mark.
set -u
read -r n4 n6 nsets digest install || { echo "no header on stdin" >&2; exit 10; }
nums "$n4" "$n6" "$nsets" "$install"
digestok "$digest"
store
