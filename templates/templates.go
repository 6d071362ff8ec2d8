// Package templates holds fwpush's built-in iptables policy templates,
// embedded in the binary, and renders them (or a user's template) into
// iptables-restore input. It imports no other fwpush package: the data a
// template receives is declared here and filled in by package roles.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var builtin embed.FS

// Builtin returns the source of a built-in template (tunnel, public,
// private) and whether it exists.
func Builtin(name string) (string, bool) {
	if name == baseName {
		return "", false
	}
	b, err := builtin.ReadFile(name + ".tmpl")
	if err != nil {
		return "", false
	}
	return string(b), true
}

// baseName is the file of blocks shared by every template.
const baseName = "base"

// Data is what a template is executed with: one host, in one address family.
// A user template gets exactly the same data as the built-in ones; the README
// documents every field.
type Data struct {
	// Family is 4 for the iptables policy and 6 for the ip6tables one.
	Family int
	Host   Host
	Role   Role
	// Tunnel is the first bastion of this host's site: the one fwpush
	// prefers to reach the site through.
	Tunnel Tunnel
	// Bastions are the bastions of this host's site other than itself:
	// it accepts SSH from each of them on its private interface, so that
	// any of them can carry a run. With one bastion, that is Tunnel (and
	// nothing on the tunnel itself).
	Bastions   []Tunnel
	Interfaces Interfaces
	// SSHPort is the port this host's sshd listens on.
	SSHPort int
	// IsTunnel is set on a bastion of this host's site: the tunnel host
	// itself, or another one listed with it.
	IsTunnel bool
	// Ingress is what this host accepts on its private interface: one
	// rule per source address (or CIDR) and protocol, from its role's
	// allow entries; with sets, one rule per source role (its set) and
	// protocol. Empty for Family 6: the private network is IPv4.
	Ingress []Rule
	// CrossSite is what this host accepts on its public interface from
	// hosts in other sites: one rule per source's public address (IPv4
	// for Family 4, IPv6 for 6) and protocol, from its role's allow
	// entries whose source hosts sit in another site.
	CrossSite []Rule
	// Egress is the private traffic this host opens, derived from every
	// other role's allow entries that name this host's role as the source.
	// Templates whose OUTPUT chain drops by default need it.
	Egress []Rule
	// TunnelReplies, on a bastion only, are the SSH servers it reaches on
	// its site's private network; their replies must be accepted
	// without conntrack (see the public template).
	TunnelReplies []Rule
	// PublicTCP is the role's public_tcp ports, as rules ready to be
	// placed on the public interface (multiport holds at most 15 ports).
	PublicTCP []Rule
}

// Host is the host being rendered. Addresses are "" when not set.
type Host struct {
	Name      string
	Role      string
	PublicIP  string
	PrivateIP string
	PublicIP6 string
}

// Role is the host's role.
type Role struct {
	Name       string
	Template   string
	PublicTCP  []int
	LogDropped bool
}

// Tunnel is a bastion: a host the others of its site are reached through.
type Tunnel struct {
	Name      string
	PublicIP  string
	PrivateIP string
	SSHPort   int
}

// Interfaces are this host's interface names.
type Interfaces struct {
	Public  string
	Private string
	// HasPublic is false for hosts that have no public address.
	HasPublic bool
}

// Rule is one resolved flow, ready to be written as an iptables rule.
type Rule struct {
	// Peer is the other end: the source of an ingress rule, the
	// destination of an egress rule, as a CIDR ("198.18.0.21/32"); ""
	// when the rule matches a set of them (Set).
	Peer string
	// Set is the ipset holding the other end's addresses
	// ("fwp-app-4"), when the rule matches a set rather than one
	// address; Match then matches it. "" otherwise.
	Set string
	// PeerName names the peer: a host name, the CIDR as written, or the
	// role whose set Set is.
	PeerName string
	// Proto is "tcp" or "udp".
	Proto string
	// Ports lists destination ports; empty means every port of Proto.
	Ports []int
	// Match is the canonical iptables match for Proto, the set and
	// Ports, as iptables-save prints it: "-p tcp", "-p tcp -m tcp --dport
	// 80", "-p tcp -m multiport --dports 80,443" or, for a set, "-p tcp -m
	// set --match-set fwp-app-4 src -m tcp --dport 80".
	Match string
}

// MultiportMax is the most ports one multiport match takes.
const MultiportMax = 15

// PortRules turns a port list into rules of at most MultiportMax ports
// each, with their canonical match. No ports gives one rule for the whole
// protocol.
func PortRules(peer, peerName, proto string, ports []int) []Rule {
	if len(ports) == 0 {
		return []Rule{{Peer: peer, PeerName: peerName, Proto: proto, Match: "-p " + proto}}
	}
	var out []Rule
	for chunk := range slices.Chunk(ports, MultiportMax) {
		out = append(out, Rule{Peer: peer, PeerName: peerName, Proto: proto, Ports: chunk, Match: portMatch(proto, chunk)})
	}
	return out
}

// SetRules are PortRules for the addresses of a set: the set matched
// (dir "src" for an ingress rule, "dst" for an egress one) after the
// protocol, where iptables-save prints it.
func SetRules(set, dir, peerName, proto string, ports []int) []Rule {
	rules := PortRules("", peerName, proto, ports)
	for i := range rules {
		r := &rules[i]
		r.Set = set
		r.Match = "-p " + proto + " -m set --match-set " + set + " " + dir + strings.TrimPrefix(r.Match, "-p "+proto)
	}
	return rules
}

func portMatch(proto string, ports []int) string {
	if len(ports) == 1 {
		return fmt.Sprintf("-p %s -m %s --dport %d", proto, proto, ports[0])
	}
	return fmt.Sprintf("-p %s -m multiport --dports %s", proto, joinInts(ports, ","))
}

func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// funcs are available to every template.
var funcs = template.FuncMap{
	// join formats a port list: {{join .Role.PublicTCP ","}}.
	"join": joinInts,
	// list makes a list of numbers to range over: {{range list 1 2 3}}.
	"list": func(ns ...int) []int { return ns },
}

// Parse parses a template. name is used in error messages, so pass the
// file name of a user template. The shared blocks of base.tmpl
// ("fwpush.input", "fwpush.public", ...) are available to it.
func Parse(name, text string) (*template.Template, error) {
	base, err := builtin.ReadFile(baseName + ".tmpl")
	if err != nil {
		return nil, fmt.Errorf("built-in base template: %w", err)
	}
	t := template.New(name).Option("missingkey=error").Funcs(funcs)
	if _, err := t.New(baseName + ".tmpl").Parse(string(base)); err != nil {
		return nil, fmt.Errorf("built-in base template: %w", err)
	}
	if _, err := t.Parse(text); err != nil {
		return nil, err
	}
	return t, nil
}

// Render executes a parsed template with data and tidies the result:
// trailing blanks and empty lines are dropped, so that template layout
// never shows up in diffs, and the output ends with a newline. The same
// data always renders byte-identical output.
func Render(t *template.Template, data Data) ([]byte, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for line := range strings.SplitSeq(buf.String(), "\n") {
		line = strings.TrimRight(line, " \t\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
