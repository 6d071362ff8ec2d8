package live

// NFT is what a host tells of its nftables: read in full on a host of the
// nftables backend, and on any other only where fwpush's table may be
// left over (its file persisted: a host moving back to iptables).
type NFT struct {
	// Tool is set when nft is installed.
	Tool bool
	// Own is table inet fwpush as nft lists it; "" when the host has
	// none.
	Own string
	// Tables are the other tables, each with its base chains: facts,
	// never touched.
	Tables []Table
	// ListFailed is set when nft could not list the tables (ListError
	// says what it said).
	ListFailed bool
	ListError  string
	// Persisted is /etc/fwpush/fwpush.nft; Boot is set when
	// fwpush-nftables.service is there to load it at boot, and enabled.
	Persisted string
	Boot      bool
	// OldSets are the names of fwpush's ipsets (fwp-, and an apply's
	// temporary fwq-) on a host of the nftables backend, whose sets are
	// in its table: what is left of its iptables days. They are read
	// only until fwpush.nft is persisted.
	OldSets []string
}

// Table is a table of nftables.
type Table struct {
	Family, Name string
	// Chains are its base chains, in the order listed.
	Chains []BaseChain
}

// BaseChain is a chain that a hook of the kernel calls.
type BaseChain struct {
	Name string
	// Type, Hook, Priority and Policy as nft lists them: "filter",
	// "input", "filter" or "0" or "-150", "drop"; Policy is "accept"
	// where nft lists none.
	Type, Hook, Priority, Policy string
}
