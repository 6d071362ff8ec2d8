# skip.sh comes first in a script that runs under sudo -S: sudo read the
# password off stdin, up to the mark that Go sends after it (dataMark); if
# sudo did not want it, it is still there, and the script skips it, as
# root, without showing it.
while IFS= read -r l; do [ "$l" = "@@fwpush:data@@" ] && break; done
