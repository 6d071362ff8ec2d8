// Package backend is the seam between fwpush and the firewall of a host:
// one Backend per way of putting a policy into a host's kernel — the
// filter table with iptables-restore, or a table of fwpush's own with nft
// — chosen per host by the inventory (inventory.Host.Backend). What does
// not depend on it (the compile, the orchestration, the reports, check)
// asks the host's Backend and never which one it is.
//
// The policy model is the same for both: the iptables-restore documents
// the templates render (roles.Policy), which the lockout check and check
// read; the nftables backend translates them (package nft).
package backend

import (
	"context"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// Backend is one way of putting a host's policy into its kernel.
type Backend interface {
	// Name is the inventory's name for it: inventory.IPTables or
	// inventory.NFTables.
	Name() string
	// Files are the documents of a policy as render shows and writes
	// them, in order.
	Files(pol *roles.Policy) []File
	// Test loads the documents of policies (all of this backend) with
	// this machine's own tools, each where it can do no harm, to find
	// what a host would refuse. Its error means that ctx ended; that
	// this machine cannot test is a warning in the result.
	Test(ctx context.Context, t Tester, pols []*roles.Policy) (Tested, error)
}

// File is a document of a policy: written as HOST.Ext.
type File struct {
	Ext  string // "rules.v4", "nft", ...
	Text []byte
}

// Tester loads documents on this machine, each in a throwaway network
// namespace: xtables.Tester, or a fake in tests.
type Tester interface {
	Test(ctx context.Context, docs []xtables.Doc) ([]error, error)
	TestSets(ctx context.Context, docs [][]byte) ([]error, error)
	TestNFT(ctx context.Context, table string, docs [][]byte) ([]xtables.Listed, error)
}

var _ Tester = (*xtables.Tester)(nil)

// Tested is what a backend's Test found.
type Tested struct {
	// Loaded counts the documents loaded, and Sets the sets loaded on
	// their own.
	Loaded, Sets int
	// Said says what took them, for validate's summary ("nft takes all
	// 3 tables"); "" when nothing was loaded.
	Said string
	// Rejected are the documents refused, each at its line.
	Rejected []roles.Rejection
	// Warning says why the documents could not be loaded here; "" when
	// they were.
	Warning string
}

// The backends.
var (
	IPTables Backend = iptables{}
	NFTables Backend = nftables{}
)

// For returns the backend of a host.
func For(h *inventory.Host) Backend {
	if h.Backend == inventory.NFTables {
		return NFTables
	}
	return IPTables
}

// Group splits policies by backend, in the order of All, each group in
// the order given; a backend no policy has gets no group.
func Group(pols []*roles.Policy) ([]Backend, [][]*roles.Policy) {
	var bs []Backend
	var groups [][]*roles.Policy
	for _, b := range All {
		var g []*roles.Policy
		for _, p := range pols {
			if For(p.Host) == b {
				g = append(g, p)
			}
		}
		if len(g) > 0 {
			bs = append(bs, b)
			groups = append(groups, g)
		}
	}
	return bs, groups
}

// All lists the backends.
var All = []Backend{IPTables, NFTables}
