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

# swapin: the new members in place. $R/sets.swapped says which lines of
# the swap document are swapped in, "FROM TO" (TO "all": to its end), or
# nothing when that is not known: empty from before the first swap, "1
# all" once every swap went through, and, since ipset restore stops at the
# line that fails and the ones before it went through, "1 K-1" when it
# names line K.
swapin() {
  [ -s "$R/sets.swap" ] || return 0
  : > "$R/sets.swapped" || return 1
  if sets swap 2> "$R/sets.err"; then echo "1 all" > "$R/sets.swapped"; return 0; fi
  failedline
  [ -z "$n" ] || echo "1 $((n - 1))" > "$R/sets.swapped"
  return 1
}

# failedline: ipset's error in $R/sets.err passed on, and the line it
# names in $n ("" for none).
failedline() {
  n=
  while IFS= read -r e; do
    printf '%s\n' "$e" >&2
    [ -n "$n" ] || case $e in *"Error in line "*)
      n=${e#*Error in line }; n=${n%%:*}
      case $n in *[!0-9]*) n= ;; esac ;;
    esac
  done < "$R/sets.err"
}

# slice FROM TO: lines FROM to TO (all: to the end) of the swap document.
slice() {
  i=0
  while IFS= read -r l; do
    i=$((i + 1))
    [ "$i" -lt "$1" ] || { [ "$2" != all ] && [ "$i" -gt "$2" ]; } || printf '%s\n' "$l"
  done < "$R/sets.swap"
}

# unstage: the sets as they were before the run, if it staged any: the
# lines swapin swapped in swapped back (a swap is its own inverse), then
# what the stage made destroyed. The old rules must be back first: a set
# that rules match cannot be destroyed. Only the lines swapped in are
# swapped back: run again, a line that failed once could go through and
# swap in. Should a swap back fail, $R/sets.swapped keeps the lines still
# swapped in, for a later unstage (the guard's), and nothing is destroyed:
# the temporary sets hold the old members. When what was swapped in is
# not known (the apply was killed during its swap), nothing is swapped or
# destroyed either; the next stage destroys the temporary sets.
unstage() {
  [ -e "$R/sets.staged" ] || return 0
  if [ -e "$R/sets.swapped" ]; then
    from='' to=''
    { read -r from to < "$R/sets.swapped"; } 2>/dev/null
    case $from in ''|*[!0-9]*)
      echo "the sets' swap went no one knows how far: the temporary sets (fwq-) keep the old members" >&2
      return 1 ;;
    esac
    if [ "$to" = all ] || [ "$to" -ge "$from" ]; then
      slice "$from" "$to" > "$R/sets.back" || return 1
      if ! sets back 2> "$R/sets.err"; then
        failedline
        if [ -n "$n" ]; then echo "$((from + n - 1)) $to" > "$R/sets.swapped"; else : > "$R/sets.swapped"; fi
        return 1
      fi
    fi
    rm -f "$R/sets.swapped"
  fi
  sets clean
}

# droptemps: the temporary sets (fwq-) run $R staged, destroyed, for a run
# that stands down: swapped, they hold the members from before it, which
# no rule matches, and nothing else would destroy them before a later run
# changes sets. They are the fwq- lines of its drop document: not its
# sets no rule matches, which the newer run's rules may. The temporary
# sets have the same names in every run: while another run that staged
# sets is undecided, they are its own, kept for its swap back.
droptemps() {
  [ -e "$R/sets.staged" ] && [ -s "$R/sets.drop" ] || return 0
  for rd in "$F"/runs/*; do
    [ "$rd" = "$R" ] || [ ! -e "$rd/sets.staged" ] || [ -e "$rd/decided" ] || return 0
  done
  while IFS= read -r l; do
    case $l in "destroy fwq-"*) printf '%s\n' "$l" ;; esac
  done < "$R/sets.drop" > "$R/sets.temps"
  sets temps >&2 || :
}

# dropsets: the old members and the sets no rule matches any more go,
# once the run's rules are kept (the run is decided: no rollback swaps
# back). What cannot go (a set another program's rules match) stays: the
# next run sees it and tries again.
dropsets() {
  sets drop >&2 || :
}
