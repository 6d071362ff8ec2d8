// Package live holds what a host tells of itself when fwpush reads it: its
// facts (the rules it runs, the files fwpush keeps there, the tools and
// interfaces it has, the runs at work on it). The host protocol
// (runner/remote) reads them; the decision of what to do to the host
// (package change) is made from them. Plain data: it imports nothing of
// fwpush and does nothing.
package live

import (
	"net/netip"
	"time"
)

// Facts is what a host told of itself in one read.
type Facts struct {
	Tools      []string // the iptables tools present
	Backend    string   // "nf_tables" or "legacy", "" when unknown
	Links      []string // interface names
	Addrs      map[netip.Addr]string
	Conn       Conn // where our SSH session comes from; zero when unknown
	V4, V6     string
	SaveFailed bool
	SaveError  string // what iptables-save said when it failed
	Persisted4 string
	Persisted6 string
	Applied    string // digest of what fwpush applied last
	Persistent bool   // iptables-persistent is installed: netfilter-persistent and its iptables plugin
	// Lock is the host lock's holder, if a run holds it.
	Lock *Lock
	// Guards are the runs whose guard is armed: applied, and neither
	// confirmed nor rolled back yet.
	Guards []Guard
	// OtherBackend is the backend the host's iptables does not use
	// ("legacy" on an nf_tables host, "nf_tables" on a legacy one) when
	// it has a filter table there; Other4 and Other6 are those tables as
	// saved ("" when it has none).
	OtherBackend   string
	Other4, Other6 string
	// Managers are the other firewall managers found enabled or running.
	Managers []Manager
	// NFT is what the host tells of its nftables; nil where it was not
	// read.
	NFT *NFT

	// IPSet: the ipset tool is installed.
	IPSet bool
	// Sets is what `ipset save` prints of fwpush's sets: those named with
	// its prefix (policy.SetPrefix, "fwp-"), and the temporary ones an
	// apply loads under another prefix ("fwq-") before it swaps them in;
	// nothing of other software's sets. "" when there are none, or no
	// ipset.
	Sets string
	// SetsFailed: ipset could not list or save the sets (SetsError says
	// why); Sets is then unknown.
	SetsFailed bool
	SetsError  string
	// PersistedSets is /etc/iptables/ipsets, which ipset-persistent loads
	// at boot before the rules ("" when there is none).
	PersistedSets string
	// PersistentSets: ipset-persistent is installed, the plugin of
	// netfilter-persistent that loads /etc/iptables/ipsets.
	PersistentSets bool
}

// Manager is another firewall manager found on a host.
type Manager struct {
	Name string // "ufw", "firewalld" or "nftables"
	// How says what gave it away: "ENABLED=yes in /etc/ufw/ufw.conf",
	// "enabled (/etc/systemd/system/multi-user.target.wants/firewalld.service)"
	// or "active" (systemctl is-active).
	How string
}

// Lock is who holds a host's lock, as the host tells it.
type Lock struct {
	Token   string
	Expires time.Time
	Who     string
	Now     time.Time // the host's clock when it told
}

// Guard is a run's apply whose fate is not decided yet.
type Guard struct {
	Token string
	// Status is how the apply went: "ok", "failed", "skipped", or ""
	// while it runs.
	Status  string
	Started time.Time // when the apply started
	FireAt  time.Time // when the guard restores the old rules
	Now     time.Time // the host's clock when it told
}

// Conn is $SSH_CONNECTION: the client and server ends of our session.
type Conn struct {
	Client, Server netip.Addr
	Port           int
}
