package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// Status is the state of a lab as found on the machine.
type Status struct {
	Name      string
	Inventory string // "" when the lab has no state
	Dir       string
	// Up is true when every namespace exists and every host's sshd runs.
	Up bool
	// Nodes are the controller, the strangers and the hosts, in that order;
	// empty when the lab has no state.
	Nodes []NodeStatus
	// Leftovers names what exists of a lab without state (namespaces,
	// processes): what down would remove.
	Leftovers []string
	// Memory is what the lab's processes (every sshd, and anything running
	// in the lab's namespaces) use.
	Memory Memory
}

// NodeStatus is one node of a lab.
type NodeStatus struct {
	Name  string
	Netns string
	// NetnsUp says whether the namespace exists.
	NetnsUp bool
	// PID is the host's sshd, 0 when it does not run (and for the
	// controller and the strangers, which run none).
	PID   int
	Addrs []netip.Addr
}

// Memory sums the memory of a set of processes, in bytes. RSS counts pages
// shared between processes once per process; PSS divides them among the
// processes sharing them, so it sums to what the processes really cost.
type Memory struct {
	Processes int
	RSS, PSS  uint64
}

// StatusOf reports the state of lab name, whether it is up, half up or
// down (with or without leftovers).
func StatusOf(name string) (*Status, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	st := &Status{Name: name, Dir: filepath.Join(Root, name)}
	netns := map[uint64]bool{}
	for _, ns := range labNetns(name) {
		if ino := nsInode(netnsPath(ns)); ino != 0 {
			netns[ino] = true
		}
	}
	var labProcs []proc
	for _, p := range procs() {
		if !p.zombie && isLabProc(p, netns, st.Dir) {
			labProcs = append(labProcs, p)
			m := procMemory(p.pid)
			st.Memory.Processes++
			st.Memory.RSS += m.rss
			st.Memory.PSS += m.pss
		}
	}

	l, err := Open(name)
	if errors.Is(err, ErrNotUp) {
		for _, ns := range labNetns(name) {
			st.Leftovers = append(st.Leftovers, "namespace "+ns)
		}
		for _, p := range labProcs {
			st.Leftovers = append(st.Leftovers, fmt.Sprintf("process %d (%s)", p.pid, p.cmdline))
		}
		if _, err := os.Stat(st.Dir); err == nil {
			st.Leftovers = append(st.Leftovers, "directory "+st.Dir)
		}
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.Inventory = l.Inventory
	st.Up = true
	for _, n := range l.nodes() {
		ns := NodeStatus{Name: n.Name, Netns: n.Netns}
		_, err := os.Stat(netnsPath(n.Netns))
		ns.NetnsUp = err == nil
		for _, lk := range []*Link{n.Public, n.Private} {
			if lk != nil {
				ns.Addrs = appendValid(ns.Addrs, lk.IP, lk.IP6)
			}
		}
		if n.Port != 0 {
			ns.PID, _ = l.sshdPid(n)
			st.Up = st.Up && ns.PID != 0
		}
		st.Up = st.Up && ns.NetnsUp
		st.Nodes = append(st.Nodes, ns)
	}
	if _, err := os.Stat(netnsPath(l.Switch)); err != nil {
		st.Up = false
	}
	return st, nil
}

// Status reports the state of the lab; see StatusOf.
func (l *Lab) Status() (*Status, error) { return StatusOf(l.Name) }
