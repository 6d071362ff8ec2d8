# nft-runs.sh follows runs.sh in the steps of a run whose apply is nft's
# (see scripts.go): a host of the nftables backend, or one moving between
# the backends. A run's documents are new.nft, which nft -f loads whole
# (the table made anew, or deleted), and new.v4 and new.v6, which
# iptables-restore --noflush loads when they are not empty (the filter
# table released by a host moving to nftables, or the policy of one moving
# back to iptables). old.nft makes the table what it was (or deletes it),
# and old.v4 and old.v6, saved when there is a new.v4 or new.v6, the
# filter table (runs.sh's back puts back what was saved).

# load: the new rules of run $R, the filter table's first, after the new
# members of fwpush's sets (see ipsets.sh).
load() {
  swapin &&
    { [ ! -s "$R/new.v4" ] || iptables-restore -w --noflush < "$R/new.v4"; } &&
    { [ ! -s "$R/new.v6" ] || ip6tables-restore -w --noflush < "$R/new.v6"; } &&
    nft -f "$R/new.nft"
}
