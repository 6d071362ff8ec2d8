# ipsets.sh follows runs.sh in the scripts of the steps that deal with a
# run: how an apply changes fwpush's sets (named fwp-; other software's are
# never touched), in the one guarded apply (see change.SetDocs and
# docs/sets.md). The run's four ipset restore documents are in its
# directory $R, each empty when the run changes no set, and ipset runs only
# for one that has lines: a host whose policy has no sets never runs it.
#
#   sets.stage  before the test: the temporary sets (fwq-) loaded with the
#               new members, the new sets made; nothing matches them yet
#   sets.swap   by the apply, before the rules: each set swapped with its
#               temporary one; a swap is its own inverse
#   sets.clean  what the stage made, destroyed once the old sets are back
#   sets.drop   once the rules are confirmed or kept: the old members (now
#               under the temporary names) and the sets no rule matches

# getsets NSTAGE NSWAP NCLEAN NDROP: the four documents off stdin, of
# those sizes, each followed by the mark, into the current directory, the
# run's.
getsets() {
  getset "$1" stage && getset "$2" swap && getset "$3" clean && getset "$4" drop
}

# getset SIZE DOC: the next SIZE bytes of stdin become sets.DOC (see payload
# in lib.sh).
getset() {
  payload "$1" "sets.$2"
}

# sets DOC: ipset restore loads run $R's document sets.DOC, if it has lines.
sets() {
  [ -s "$R/sets.$1" ] || return 0
  ipset restore < "$R/sets.$1"
}

# stagesets: the stage document loaded; sets.staged says so, from before
# it begins, for unstage.
stagesets() {
  [ -s "$R/sets.stage" ] || return 0
  : > "$R/sets.staged" && sets stage
}

# swapin: the new members in place. $R/sets.swapped says so from before
# the first swap, since ipset restore stops at a line that fails and the
# ones before it went through; it holds "all" once every swap did.
swapin() {
  [ -s "$R/sets.swap" ] || return 0
  : > "$R/sets.swapped" && sets swap && echo all > "$R/sets.swapped"
}

# unstage: the sets as they were before the run, if it staged any: what
# swapin swapped swapped back (a swap is its own inverse: run again, the
# document undoes what went through, and fails again where swapin failed),
# then what the stage made destroyed. The old rules must be back first: a
# set that rules match cannot be destroyed. Should the swap back of a
# swap that went through fail, nothing is destroyed: the temporary sets
# hold the old members.
unstage() {
  [ -e "$R/sets.staged" ] || return 0
  if [ -e "$R/sets.swapped" ]; then
    w=
    { read -r w < "$R/sets.swapped"; } 2>/dev/null
    if ! sets swap && [ "$w" = all ]; then return 1; fi
    rm -f "$R/sets.swapped"
  fi
  sets clean
}

# dropsets: the old members and the sets no rule matches any more go,
# once the run's rules are kept (the run is decided: no rollback swaps
# back). What cannot go (a set another program's rules match) stays: the
# next run sees it and tries again.
dropsets() {
  sets drop >&2 || :
}
