# persist.sh persists for a host whose live rules already match (see
# store.sh). Its stdin: "N4 N6 DIGEST INSTALL", then rules.v4 (N4 bytes)
# and rules.v6, each followed by the mark.
set -u
read -r n4 n6 digest install || { echo "no header on stdin" >&2; exit 10; }
nums "$n4" "$n6" "$install"
digestok "$digest"
store
