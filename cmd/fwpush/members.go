package main

import (
	"bytes"
	"path/filepath"
	"strings"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lockfile"
)

// membership is how the fleet a run resolved differs from the one the
// last run of the same inventory on this machine resolved: a cloud
// inventory's hosts come and go between cron runs. The last fleet (its
// digest and its hosts' names) is kept in the controller's state
// directory (see lockfile.StateDir), one file per inventory, named after
// its real path as its lock is; a run that changes nothing (--dry-run)
// compares without keeping. The first run, or one after the state was
// lost, has nothing to compare with and says nothing.
type membership struct {
	dir, key     string
	cur          history.Members
	joined, left []string
	// kept is what the state file held when it was read: a run whose
	// fleet is the same writes nothing (an fsync on every cron run).
	kept []byte
}

// stateKind names the file of the last fleet in the state directory.
const stateKind = "fleet"

// loadMembership compares inv, read from path, with the fleet the last
// run kept.
func loadMembership(path string, inv *inventory.Inventory) (*membership, error) {
	m := &membership{key: inventoryKey(path), cur: history.Members{Digest: inv.Digest()}}
	for _, h := range inv.Hosts {
		m.cur.Hosts = append(m.cur.Hosts, h.Name)
	}
	dir, err := lockfile.StateDir()
	if err != nil {
		return m, err
	}
	m.dir = dir
	data, err := lockfile.ReadState(dir, m.key, stateKind)
	if err != nil {
		return m, err
	}
	prev, err := history.ParseMembers(data)
	if err != nil {
		return m, err
	}
	m.kept = data
	m.joined, m.left = history.Changes(prev, m.cur)
	return m, nil
}

// save keeps this run's fleet for the next run.
func (m *membership) save() error {
	if m.dir == "" {
		return nil // no state directory: said when it was loaded
	}
	data := m.cur.Marshal()
	if bytes.Equal(data, m.kept) {
		return nil // kept already
	}
	return lockfile.WriteState(m.dir, m.key, stateKind, data)
}

// String says the changes in one line, "joined: a, b; left: c"; "" for
// none.
func (m *membership) String() string {
	var parts []string
	if len(m.joined) > 0 {
		parts = append(parts, "joined: "+strings.Join(m.joined, ", "))
	}
	if len(m.left) > 0 {
		parts = append(parts, "left: "+strings.Join(m.left, ", "))
	}
	return strings.Join(parts, "; ")
}

// inventoryKey is what names an inventory on this machine: its real path
// (symbolic links resolved, so that two names of one file are one
// inventory).
func inventoryKey(path string) string {
	real, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if r, err := filepath.EvalSymlinks(real); err == nil {
		real = r
	}
	return real
}
