// Package lab turns an inventory into a throwaway copy of its fleet on one
// Linux machine: every host in its own network namespace with the
// inventory's interfaces and addresses, a real OpenSSH sshd per host in a
// private mount namespace, a "controller" on the public segment (the
// operator's laptop) and a "stranger" on the private one.
//
// Each host has a root filesystem of its own: an overlay whose lower layer is
// the machine's / (read-only) and whose upper layer is the host's directory
// in the lab, mounted in the host's mount namespace only. What a host
// installs, writes or deletes stays in its upper layer; its login user,
// sudo rights and apt sources are written there before it comes up, and its
// apt installs from a local repository the lab keeps (see Options).
//
// Everything the lab creates lives in namespaces and files whose names start
// with "fwp"; nothing is added to the machine's own network namespace, its
// firewall is never touched and its files never change. Down removes all of
// it, found by name prefix, so it also cleans up after a crash.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fwpush/fwpush/inventory"
)

// Root is where labs keep their state: one directory per lab.
const Root = "/var/lib/fwpush-lab"

// Prefix starts the name of every namespace and interface the lab creates.
const Prefix = "fwp"

// MaxNameLen bounds lab names so that namespace names stay readable.
const MaxNameLen = 20

// MaxHosts is the most hosts a lab can hold: a Linux bridge has at most 1024
// ports and each segment needs two for the controller and the stranger.
const MaxHosts = 1000

// The node names Probe and DialContext accept besides host names.
const (
	Controller = "controller"
	Stranger   = "stranger"
)

// ErrNotUp is returned by Open when the lab has no state: it was never
// brought up, or it was taken down.
var ErrNotUp = errors.New("lab is not up")

// Lab is a planned or running lab. New plans one from an inventory; Up
// builds it and records it in Dir so that Open finds it again.
type Lab struct {
	// Name distinguishes labs that are up at once.
	Name string `json:"name"`
	// Inventory is the absolute path of the inventory the lab was built from.
	Inventory string `json:"inventory"`
	// Dir holds the lab's keys, configuration, per-host directories and logs.
	Dir string `json:"dir"`
	// Identity is the client's private key, authorized on every host for
	// the login user (and root, unless root login is off).
	Identity string `json:"identity"`
	// KnownHosts holds every host's key under the addresses the inventory names.
	KnownHosts string `json:"known_hosts"`
	// SSHConfig is an ssh_config for OpenSSH clients (ssh -F) naming the key,
	// known_hosts, users and ports, with strict host-key checking.
	SSHConfig string `json:"ssh_config"`
	// Switch is the namespace that holds the two bridges.
	Switch     string  `json:"switch"`
	Controller *Node   `json:"controller"`
	Stranger   *Node   `json:"stranger"`
	Hosts      []*Node `json:"hosts"`
}

// Node is one namespace attached to the lab's network: a host, the
// controller or the stranger.
type Node struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	// Port and User are the inventory's; zero for the controller and stranger.
	Port    int    `json:"port,omitempty"`
	User    string `json:"user,omitempty"`
	Public  *Link  `json:"public,omitempty"`
	Private *Link  `json:"private,omitempty"`
	// Options are the host's, as Options.For gave them.
	Options HostOptions `json:"options,omitzero"`
}

// Link is a node's interface on one segment.
type Link struct {
	Iface string `json:"iface"`
	// Peer is the other end of the veth pair, in the switch namespace.
	Peer string     `json:"peer"`
	IP   netip.Addr `json:"ip,omitzero"`
	IP6  netip.Addr `json:"ip6,omitzero"`
}

// New plans a lab for inv, its hosts shaped by opts, without touching the
// machine. name is the lab's name; "" derives it from the inventory's file
// name. Every problem that would stop Up half-way (names Linux refuses,
// addresses used twice, too many hosts, options that contradict each other)
// is reported here.
func New(inv *inventory.Inventory, name string, opts Options) (*Lab, error) {
	if name == "" {
		n, err := NameFor(inv.Path)
		if err != nil {
			return nil, err
		}
		name = n
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	var problems []error
	if len(inv.Hosts) == 0 {
		problems = append(problems, errors.New("the inventory has no hosts"))
	}
	if len(inv.Hosts) > MaxHosts {
		problems = append(problems, fmt.Errorf("%d hosts: a lab holds at most %d", len(inv.Hosts), MaxHosts))
	}
	abs := inv.Path
	if abs != "" {
		if a, err := filepath.Abs(abs); err == nil {
			abs = a
		}
	}
	dir := filepath.Join(Root, name)
	l := &Lab{
		Name:       name,
		Inventory:  abs,
		Dir:        dir,
		Identity:   filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		SSHConfig:  filepath.Join(dir, "ssh_config"),
		Switch:     netnsName(name, "_switch"),
	}
	used := map[netip.Addr]string{}
	for i, h := range inv.Hosts {
		key := "host " + h.Name
		if h.Name == Controller || h.Name == Stranger {
			problems = append(problems, fmt.Errorf("%s: the name %q is the lab's own (lab probe and lab shell use it): rename the host", key, h.Name))
		}
		n := &Node{Name: h.Name, Netns: netnsName(name, "."+h.Name), Port: h.Port, User: h.User, Options: opts.For(h.Name)}
		if h.User != "" && h.User != "root" {
			// As on cloud images: a login user other than root, and root's
			// login off.
			n.Options.NoRootLogin = true
		}
		for _, err := range n.Options.check(h.User) {
			problems = append(problems, fmt.Errorf("%s: %w", key, err))
		}
		if h.HasPublic() {
			n.Public = &Link{Iface: h.PublicIface, Peer: fmt.Sprintf("%s-pub%d", Prefix, i), IP: h.PublicIP, IP6: h.PublicIP6}
		}
		if h.PrivateIP.IsValid() {
			n.Private = &Link{Iface: h.PrivateIface, Peer: fmt.Sprintf("%s-prv%d", Prefix, i), IP: h.PrivateIP}
		}
		if n.Public == nil && n.Private == nil {
			problems = append(problems, fmt.Errorf("%s: no address at all: the lab cannot attach it", key))
		}
		for _, lk := range []*Link{n.Public, n.Private} {
			if lk == nil {
				continue
			}
			if err := checkIface(lk.Iface); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", key, err))
			}
			for _, ip := range []netip.Addr{lk.IP, lk.IP6} {
				if !ip.IsValid() {
					continue
				}
				if prev, dup := used[ip]; dup {
					problems = append(problems, fmt.Errorf("%s: address %s is already on %s: two interfaces cannot share an address", key, ip, prev))
					continue
				}
				used[ip] = key
			}
		}
		l.Hosts = append(l.Hosts, n)
	}
	for _, h := range slices.Sorted(maps.Keys(opts.Hosts)) {
		if !slices.ContainsFunc(inv.Hosts, func(ih *inventory.Host) bool { return ih.Name == h }) {
			problems = append(problems, fmt.Errorf("options for host %q: the inventory has no such host", h))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("lab %s: %w", name, errors.Join(problems...))
	}
	l.Controller, l.Stranger = outsiders(name, l.Hosts)
	if !l.Controller.Public.IP.IsValid() || !l.Stranger.Private.IP.IsValid() {
		return nil, fmt.Errorf("lab %s: no free address left for the controller or the stranger", name)
	}
	return l, nil
}

// Open returns the lab called name as Up recorded it. The error wraps
// ErrNotUp when there is no such lab.
func Open(name string) (*Lab, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(Root, name, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w", name, ErrNotUp)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: read state: %w", name, err)
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("lab %s: read state: %w", name, err)
	}
	return &l, nil
}

const stateFile = "state.json"

// Node returns the host, controller or stranger called name.
func (l *Lab) Node(name string) (*Node, error) {
	switch name {
	case Controller:
		return l.Controller, nil
	case Stranger:
		return l.Stranger, nil
	}
	for _, n := range l.Hosts {
		if n.Name == name {
			return n, nil
		}
	}
	names := []string{Controller, Stranger}
	for _, n := range l.Hosts {
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("lab %s: no node %q (nodes: %s)", l.Name, name, strings.Join(names, ", "))
}

// Host returns the inventory host called name.
func (l *Lab) Host(name string) (*Node, error) {
	for _, n := range l.Hosts {
		if n.Name == name {
			return n, nil
		}
	}
	names := make([]string, 0, len(l.Hosts))
	for _, n := range l.Hosts {
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("lab %s: no host %q (hosts: %s)", l.Name, name, strings.Join(names, ", "))
}

// hostDir is where one host's keys, configuration and own directories live.
func (l *Lab) hostDir(n *Node) string { return filepath.Join(l.Dir, "hosts", n.Name) }

// NameFor derives a lab name from an inventory path: its file name without
// extension, lowercased, with anything but letters, digits and '-' turned
// into '-'.
func NameFor(path string) (string, error) {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var b strings.Builder
	for _, c := range strings.ToLower(base) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > MaxNameLen {
		name = strings.TrimRight(name[:MaxNameLen], "-")
	}
	if name == "" {
		return "", fmt.Errorf("cannot derive a lab name from %q: set one with --name", path)
	}
	return name, nil
}

// CheckName reports whether name can name a lab: 1 to 20 lowercase letters,
// digits and inner '-'. Namespace names join the lab name and a host name
// with '.' or '_', which lab names never contain, so that one lab's prefix
// never matches another lab's namespaces.
func CheckName(name string) error {
	ok := len(name) > 0 && len(name) <= MaxNameLen && name[0] != '-' && name[len(name)-1] != '-'
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid lab name %q: use 1-%d lowercase letters, digits and '-'", name, MaxNameLen)
	}
	return nil
}

// netnsName names a namespace of lab name; suffix is "."+host for hosts and
// "_"+role for the lab's own namespaces.
func netnsName(name, suffix string) string { return Prefix + "-" + name + suffix }

// netnsPrefixes are the prefixes of every namespace of lab name.
func netnsPrefixes(name string) []string {
	return []string{netnsName(name, "."), netnsName(name, "_")}
}

// reservedIfaces are names that exist in every namespace or that the kernel
// reserves in /proc/sys/net.
var reservedIfaces = []string{"lo", "all", "default"}

func checkIface(name string) error {
	if !inventory.ValidIface(name) {
		return fmt.Errorf("interface %q: not a valid Linux interface name", name)
	}
	if slices.Contains(reservedIfaces, name) {
		return fmt.Errorf("interface %q: the name is taken in every network namespace", name)
	}
	return nil
}
