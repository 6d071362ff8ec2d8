package inventory

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every bad inventory names the file, the line, the key and what is wrong,
// and lists every problem at once. The fixtures start on the line after
// the opening backquote: that line is line 1.
var badInventories = []struct {
	name string
	toml string
	want []string
}{
	// Syntax: the decoder stops at the first error.
	{
		name: "syntax error in a table header",
		toml: `
[ssh
tunnel = "t"
`,
		want: []string{`bad.toml:1:5: expected '.' or ']' to end table name, but got '\n' instead`},
	},
	{
		name: "syntax error in a value",
		toml: `
[ssh]
tunnel = "t"
  user  ==  "root"
`,
		want: []string{`bad.toml:3:10: ssh.user: expected value but found '=' instead`},
	},
	{
		name: "newline quoted in a syntax error",
		toml: `
[ssh]
user = "root\
"
`,
		want: []string{`bad.toml:2:9: ssh.user: invalid escape in string '\\n'`},
	},
	{
		name: "key defined twice",
		toml: `
[ssh]
port = 22
port = 2222
`,
		want: []string{`bad.toml:3:1: ssh.port: Key 'ssh.port' has already been defined.`},
	},
	{
		name: "string where an integer is expected",
		toml: `
[ssh]
tunnel = "t"
port = "22"
`,
		want: []string{`bad.toml:3: ssh.port: wrong type: expected an integer, found a string`},
	},
	{
		// A field whose tag has options (omitempty) is found by its name.
		name: "integer where a string with tag options is expected",
		toml: `
[ssh]
tunnel = "t"
[firewall]
backend = 1
`,
		want: []string{`bad.toml:4: firewall.backend: wrong type: expected a string, found an integer`},
	},
	{
		name: "integer where a duration string is expected",
		toml: `
[ssh]
tunnel = "t"
timeout = 10
`,
		want: []string{`bad.toml:3: ssh.timeout: wrong type: expected a string, found an integer`},
	},
	{
		name: "string in a port list",
		toml: `
[roles.app]
template = "private"
allow = [
  { from = "lb", tcp = ["80"] },
]
`,
		want: []string{`bad.toml:4: roles.app.allow[0].tcp[0]: wrong type: expected an integer, found a string`},
	},
	{
		name: "single port instead of a list",
		toml: `
[roles.lb]
template = "public"
public_tcp = 443
`,
		want: []string{`bad.toml:3: roles.lb.public_tcp: wrong type: expected an array, found an integer`},
	},
	{
		// The decoder stops at one of them, picked in map order, and
		// without the index of the allow entry: all are found anyway.
		name: "several values of the wrong type",
		toml: `
[ssh]
tunnel = "t"
parallel = "20"
[hosts.b]
port = 22.0
[hosts.a]
Port = "22"
colour = 1
[roles.app]
template = "private"
log_dropped = "yes"
allow = [
  { from = "lb", tcp = [80] },
  { from = "lb", tcp = [80, "443"], udp = 53 },
  { from = 10 },
]
`,
		want: []string{
			`bad.toml:3: ssh.parallel: wrong type: expected an integer, found a string`,
			`bad.toml:5: hosts.b.port: wrong type: expected an integer, found a float`,
			`bad.toml:7: hosts.a.Port: unknown key "Port" in [hosts.a]; did you mean "port"?`,
			`bad.toml:7: hosts.a.Port: wrong type: expected an integer, found a string`,
			`bad.toml:8: hosts.a.colour: unknown key "colour" in [hosts.a]`,
			`bad.toml:11: roles.app.log_dropped: wrong type: expected a boolean, found a string`,
			`bad.toml:14: roles.app.allow[1].tcp[1]: wrong type: expected an integer, found a string`,
			`bad.toml:14: roles.app.allow[1].udp: wrong type: expected an array, found an integer`,
			`bad.toml:15: roles.app.allow[2].from: wrong type: expected a string, found an integer`,
		},
	},
	{
		name: "host that is not a table",
		toml: `
[hosts]
web-1 = "198.18.0.1"
`,
		want: []string{`bad.toml:2: hosts.web-1: wrong type: expected a table, found a string`},
	},

	// Unknown keys, with the table they are in and a suggestion.
	{
		name: "unknown key at the top level",
		toml: `
[ssh]
tunnel = "t"
[sssh]
user = "root"
port = 22
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: sssh: unknown key "sssh" in the top level; did you mean "ssh"?`},
	},
	{
		name: "unknown key in ssh",
		toml: `
[ssh]
tunnel = "t"
prot = 2222
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: ssh.prot: unknown key "prot" in [ssh]; did you mean "port"?`},
	},
	{
		name: "unknown key in a host",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private-ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:6: hosts.t.private-ip: unknown key "private-ip" in [hosts.t]; did you mean "private_ip"?`},
	},
	{
		name: "unknown key in a dotted host with a quoted name",
		toml: `
[ssh]
tunnel = "t"
[hosts]
t = { role = "tunnel", public_ip = "203.0.113.1", private_ip = "198.18.0.1" }
"web.1".role = "tunnel"
"web.1".private_ip = "198.18.0.2"
"web.1".colour = "blue"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:7: hosts."web.1".colour: unknown key "colour" in [hosts."web.1"]`},
	},
	{
		name: "unknown key in a role",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
public_tpc = [22]
`,
		want: []string{`bad.toml:8: roles.tunnel.public_tpc: unknown key "public_tpc" in [roles.tunnel]; did you mean "public_tcp"?`},
	},
	{
		name: "unknown keys inside allow inline tables",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
allow = [
  { from = "198.51.100.0/24" },
  { from = "198.51.100.0/24", tpc = [22] },
  { from = "198.51.100.0/24",
    tpc = [22] },
  { from = "198.51.100.0/24", ports = [22] },
]
`,
		want: []string{
			`bad.toml:10: roles.tunnel.allow[1].tpc: unknown key "tpc" in roles.tunnel.allow[1]; did you mean "tcp"?`,
			`bad.toml:12: roles.tunnel.allow[2].tpc: unknown key "tpc" in roles.tunnel.allow[2]; did you mean "tcp"?`,
			`bad.toml:13: roles.tunnel.allow[3].ports: unknown key "ports" in roles.tunnel.allow[3]`,
		},
	},
	{
		// The decoder matches field names regardless of case: "TCP"
		// would replace "tcp" without a word.
		name: "keys in the wrong case",
		toml: `
[ssh]
Tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
allow = [ { from = "tunnel", tcp = [22], TCP = [1] } ]
[SSH]
user = "root"
`,
		want: []string{
			`bad.toml:2: ssh.Tunnel: unknown key "Tunnel" in [ssh]; did you mean "tunnel"?`,
			`bad.toml:8: roles.tunnel.allow[0].TCP: unknown key "TCP" in roles.tunnel.allow[0]; did you mean "tcp"?`,
			`bad.toml:9: SSH: unknown key "SSH" in the top level; did you mean "ssh"?`,
		},
	},
	{
		// Which of the two tables the decoder keeps depends on map order;
		// nothing decoded is checked until the spelling is fixed.
		name: "table in the wrong case next to the right one",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[Hosts.t]
role = "nope"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:6: Hosts: unknown key "Hosts" in the top level; did you mean "hosts"?`},
	},
	{
		name: "unknown key in an allow array table",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
[[roles.tunnel.allow]]
from = "198.51.100.0/24"
[[roles.tunnel.allow]]
form = "198.51.100.0/24"
`,
		want: []string{
			`bad.toml:10: roles.tunnel.allow[1].from: missing: name a role or a CIDR`,
			`bad.toml:11: roles.tunnel.allow[1].form: unknown key "form" in roles.tunnel.allow[1]; did you mean "from"?`,
		},
	},

	// The tunnel.
	{
		name: "missing ssh.tunnel",
		toml: `
[ssh]
user = "root"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:1: ssh.tunnel: missing: name the host every other host is reached through (tunnel = "NAME")`},
	},
	{
		name: "missing ssh table",
		toml: `
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml: ssh.tunnel: missing: name the host every other host is reached through (tunnel = "NAME")`},
	},
	{
		name: "tunnel names an unknown host",
		toml: `
[ssh]
tunnel = "bastion"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:2: ssh.tunnel: host "bastion" does not exist: the tunnel must be one of [hosts]`},
	},
	{
		name: "tunnel without public_ip",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: hosts.t.public_ip: missing: the tunnel "t" is reached on its public IP`},
	},
	{
		name: "tunnel with an empty public_ip",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = ""
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:5: hosts.t.public_ip: missing: the tunnel "t" is reached on its public IP`},
	},
	{
		name: "tunnel with an invalid public_ip is not also missing one",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:5: hosts.t.public_ip: "203.0.113" is not an IP address`},
	},
	{
		name: "tunnel without private_ip when other hosts exist",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[hosts.db-1]
role = "tunnel"
private_ip = "198.18.0.2"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: hosts.t.private_ip: missing: the other hosts accept SSH from the tunnel's private IP`},
	},

	// Hosts.
	{
		name: "non-tunnel host without private_ip",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.web-1]
role = "tunnel"
public_ip = "203.0.113.2"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:7: hosts.web-1.private_ip: missing: hosts other than the tunnel are reached on their private IP`},
	},
	{
		name: "non-tunnel host without private_ip, written with dotted keys",
		toml: `
ssh.tunnel = "t"
hosts.t.role = "tunnel"
hosts.t.public_ip = "203.0.113.1"
hosts.t.private_ip = "198.18.0.1"
hosts.web-1.role = "tunnel"
roles.tunnel.template = "tunnel"
`,
		want: []string{`bad.toml:5: hosts.web-1.private_ip: missing: hosts other than the tunnel are reached on their private IP`},
	},
	{
		name: "host without role",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: hosts.t.role: missing: every host needs a role`},
	},
	{
		name: "role that does not exist",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
[roles.app]
template = "private"
`,
		want: []string{`bad.toml:4: hosts.t.role: role "tunel" does not exist (roles: app, tunnel)`},
	},
	{
		name: "invalid host names",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts."-web"]
role = "tunnel"
private_ip = "198.18.0.2"
[hosts."web 2"]
role = "tunnel"
private_ip = "198.18.0.3"
[hosts.a123456789b123456789c123456789d123456789e123456789f123456789g123]
role = "tunnel"
private_ip = "198.18.0.4"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:7: hosts.-web: invalid host name "-web": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
			`bad.toml:10: hosts.web 2: invalid host name "web 2": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
			`bad.toml:13: hosts.a123456789b123456789c123456789d123456789e123456789f123456789g123: invalid host name "a123456789b123456789c123456789d123456789e123456789f123456789g123": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
		},
	},
	{
		name: "invalid user names",
		toml: `
[ssh]
tunnel = "t"
user = "-oProxyCommand=x"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
user = "ro ot"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: ssh.user: "-oProxyCommand=x" is not a valid user name`,
			`bad.toml:7: hosts.t.user: "ro ot" is not a valid user name`,
		},
	},

	// Addresses.
	{
		name: "invalid IPv4 and IPv6 addresses",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.256"
private_ip = "198.18.0.1/24"
public_ip6 = "2001:db8::g"
[hosts.u]
role = "tunnel"
private_ip = "fe80::1%eth1"
public_ip6 = "203.0.113.2"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:5: hosts.t.public_ip: "203.0.113.256" is not an IP address`,
			`bad.toml:6: hosts.t.private_ip: "198.18.0.1/24" is not an IP address`,
			`bad.toml:7: hosts.t.public_ip6: "2001:db8::g" is not an IP address`,
			`bad.toml:10: hosts.u.private_ip: "fe80::1%eth1" is not an IP address`,
			`bad.toml:11: hosts.u.public_ip6: "203.0.113.2" is not an IPv6 address`,
		},
	},
	{
		name: "IPv6 address in public_ip",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "2001:db8::1"
private_ip = "198.18.0.1"
[hosts.u]
role = "tunnel"
private_ip = "2001:db8::2"
public_ip6 = "::ffff:203.0.113.3"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:5: hosts.t.public_ip: "2001:db8::1" is not an IPv4 address: put an IPv6 address in public_ip6`,
			`bad.toml:9: hosts.u.private_ip: "2001:db8::2" is not an IPv4 address`,
			`bad.toml:10: hosts.u.public_ip6: "::ffff:203.0.113.3" is not an IPv6 address`,
		},
	},
	{
		name: "addresses that cannot be a server's",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "224.0.0.1"
private_ip = "127.0.0.1"
public_ip6 = "ff02::1"
[hosts.u]
role = "tunnel"
public_ip = "255.255.255.255"
private_ip = "169.254.1.1"
public_ip6 = "::1"
[hosts.v]
role = "tunnel"
private_ip = "0.0.0.0"
public_ip6 = "fe80::1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:5: hosts.t.public_ip: 224.0.0.1 cannot be a server's address`,
			`bad.toml:6: hosts.t.private_ip: 127.0.0.1 cannot be a server's address`,
			`bad.toml:7: hosts.t.public_ip6: ff02::1 cannot be a server's address`,
			`bad.toml:10: hosts.u.public_ip: 255.255.255.255 cannot be a server's address`,
			`bad.toml:11: hosts.u.private_ip: 169.254.1.1 cannot be a server's address`,
			`bad.toml:12: hosts.u.public_ip6: ::1 cannot be a server's address`,
			`bad.toml:15: hosts.v.private_ip: 0.0.0.0 cannot be a server's address`,
			`bad.toml:16: hosts.v.public_ip6: fe80::1 cannot be a server's address`,
		},
	},
	{
		name: "duplicate IPs across hosts",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
public_ip6 = "2001:db8::1"
[hosts.u]
role = "tunnel"
public_ip = "198.18.0.1"
private_ip = "198.18.0.1"
public_ip6 = "2001:DB8::1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:10: hosts.u.public_ip: 198.18.0.1 is already used by hosts.t.private_ip`,
			`bad.toml:11: hosts.u.private_ip: 198.18.0.1 is already used by hosts.t.private_ip`,
			`bad.toml:12: hosts.u.public_ip6: 2001:db8::1 is already used by hosts.t.public_ip6`,
		},
	},

	// Roles and their allow entries.
	{
		name: "template missing",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
public_tcp = [22]
`,
		want: []string{`bad.toml:6: roles.tunnel.template: missing: use a built-in template (private, public, tunnel) or a path to a template file`},
	},
	{
		// Any file would be read, and its lines quoted in the errors.
		name: "template not a .tmpl file",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "/etc/shadow"
`,
		want: []string{`bad.toml:7: roles.tunnel.template: "/etc/shadow" is neither a built-in template (private, public, tunnel) nor a template file, whose name ends in .tmpl`},
	},
	{
		name: "private template with public_tcp",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "private"
public_tcp = [22]
`,
		want: []string{`bad.toml:8: roles.tunnel.public_tcp: the private template opens nothing on the public interface: use template "public" to open public ports`},
	},
	{
		name: "invalid role names",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
[roles."db/primary"]
template = "private"
[roles._x]
template = "private"
`,
		want: []string{
			`bad.toml:8: roles.db/primary: invalid role name "db/primary": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
			`bad.toml:10: roles._x: invalid role name "_x": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
		},
	},
	{
		name: "allow sources",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
allow = [
  { from = "198.51.100.0/33" },
  { from = "198.51.100.7/24" },
  { from = "2001:db8::/32" },
  { from = "2001:db8::1" },
  { from = "web" },
  { from = "", tcp = [22] },
  { tcp = [22] },
]
`,
		want: []string{
			`bad.toml:9: roles.tunnel.allow[0].from: "198.51.100.0/33" is not a valid CIDR (such as "198.51.100.0/24")`,
			`bad.toml:10: roles.tunnel.allow[1].from: "198.51.100.7/24" has host bits set: did you mean "198.51.100.0/24"?`,
			`bad.toml:11: roles.tunnel.allow[2].from: "2001:db8::/32": only IPv4 sources exist on the private network`,
			`bad.toml:12: roles.tunnel.allow[3].from: "2001:db8::1": only IPv4 sources exist on the private network`,
			`bad.toml:13: roles.tunnel.allow[4].from: "web" is neither a role nor a CIDR (roles: tunnel)`,
			`bad.toml:14: roles.tunnel.allow[5].from: missing: name a role or a CIDR`,
			`bad.toml:15: roles.tunnel.allow[6].from: missing: name a role or a CIDR`,
		},
	},
	{
		// iptables-save leaves "-s 0.0.0.0/0" out: such a rule would never
		// compare equal to the live one, and would let every tenant of the
		// private network in.
		name: "every address as a source",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
allow = [
  { from = "0.0.0.0/0", tcp = [80] },
  { from = "::/0" },
  { from = "203.0.113.7/0" },
]
`,
		want: []string{
			`bad.toml:9: roles.tunnel.allow[0].from: "0.0.0.0/0" allows every address, other tenants of the private network included: use public_tcp to open a port to the internet, or a narrower CIDR`,
			`bad.toml:10: roles.tunnel.allow[1].from: "::/0" allows every address, other tenants of the private network included: use public_tcp to open a port to the internet, or a narrower CIDR`,
			`bad.toml:11: roles.tunnel.allow[2].from: "203.0.113.7/0" allows every address, other tenants of the private network included: use public_tcp to open a port to the internet, or a narrower CIDR`,
		},
	},

	// Ports.
	{
		name: "ports out of range",
		toml: `
[ssh]
tunnel = "t"
port = 0
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
port = 70000
[roles.tunnel]
template = "tunnel"
public_tcp = [22, 0]
allow = [
  { from = "tunnel", tcp = [
    80,
    70000,
  ] },
  { from = "tunnel", udp = [-1] },
]
`,
		want: []string{
			`bad.toml:3: ssh.port: port 0 is out of range 1-65535`,
			`bad.toml:7: hosts.t.port: port 70000 is out of range 1-65535`,
			`bad.toml:10: roles.tunnel.public_tcp[1]: port 0 is out of range 1-65535`,
			`bad.toml:14: roles.tunnel.allow[0].tcp[1]: port 70000 is out of range 1-65535`,
			`bad.toml:16: roles.tunnel.allow[1].udp[0]: port -1 is out of range 1-65535`,
		},
	},
	{
		name: "empty port lists",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
allow = [
  { from = "tunnel", tcp = [] },
  { from = "tunnel", udp = [] },
]
`,
		want: []string{
			`bad.toml:9: roles.tunnel.allow[0].tcp: an empty list opens nothing: leave tcp out to allow every TCP port, or list ports`,
			`bad.toml:10: roles.tunnel.allow[1].udp: an empty list opens nothing: leave udp out, or list ports`,
		},
	},

	// ssh settings.
	{
		name: "invalid durations",
		toml: `
[ssh]
tunnel = "t"
timeout = "10"
rollback_after = "soon"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: ssh.timeout: "10" is not a duration (such as "10s" or "1m")`,
			`bad.toml:4: ssh.rollback_after: "soon" is not a duration (such as "10s" or "1m")`,
		},
	},
	{
		name: "durations too short",
		toml: `
[ssh]
tunnel = "t"
timeout = "500ms"
rollback_after = "-1m"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: ssh.timeout: 500ms is too short: at least 1s`,
			`bad.toml:4: ssh.rollback_after: -1m is too short: at least 5s`,
		},
	},
	{
		name: "durations too long",
		toml: `
[ssh]
tunnel = "t"
timeout = "100000h"
rollback_after = "11m"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: ssh.timeout: 100000h is too long: at most 2m`,
			`bad.toml:4: ssh.rollback_after: 11m is too long: at most 10m`,
		},
	},
	{
		name: "rollback_after shorter than timeout",
		toml: `
[ssh]
tunnel = "t"
timeout = "1m"
rollback_after = "30s"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:4: ssh.rollback_after: 30s is not clearly longer than ssh.timeout (1m): after the apply fwpush may need a whole timeout to reach the host again and confirm before it rolls back; use at least 1m30s`},
	},
	{
		name: "rollback_after not clearly longer than timeout",
		toml: `
[ssh]
tunnel = "t"
rollback_after = "14s"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: ssh.rollback_after: 14s is not clearly longer than ssh.timeout (10s): after the apply fwpush may need a whole timeout to reach the host again and confirm before it rolls back; use at least 15s`},
	},
	{
		name: "timeout too long for the default rollback_after",
		toml: `
[ssh]
tunnel = "t"
timeout = "25s"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: ssh.timeout: 25s leaves no time to confirm before rollback_after (30s, the default) fires: after the apply fwpush may need a whole timeout to reach the host again; use at most 20s, or set rollback_after to at least 38s`},
	},
	{
		name: "parallel out of range",
		toml: `
[ssh]
tunnel = "t"
parallel = 0
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: ssh.parallel: 0 is out of range: hosts worked on at once must be 1 to 1000`},
	},
	{
		name: "parallel too high",
		toml: `
[ssh]
tunnel = "t"
parallel = 1001
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:3: ssh.parallel: 1001 is out of range: hosts worked on at once must be 1 to 1000`},
	},
	{
		name: "become neither sudo nor none",
		toml: `
[ssh]
tunnel = "t"
become = "su"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
become = "doas"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: ssh.become: "su" is not a way to become root: use "sudo" (the default for a user other than root) or "none" (the login user has root's rights)`,
			`bad.toml:7: hosts.t.become: "doas" is not a way to become root: use "sudo" (the default for a user other than root) or "none" (the login user has root's rights)`,
		},
	},

	// Interfaces.
	{
		name: "invalid interface names",
		toml: `
[ssh]
tunnel = "t"
[interfaces]
public = "enp0s31f6.100-wan"
private = "eth/1"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
public_iface = "eth0:1"
private_iface = "eth 1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:4: interfaces.public: "enp0s31f6.100-wan" is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)`,
			`bad.toml:5: interfaces.private: "eth/1" is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)`,
			`bad.toml:9: hosts.t.public_iface: "eth0:1" is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)`,
			`bad.toml:10: hosts.t.private_iface: "eth 1" is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)`,
		},
	},
	{
		name: "same public and private interface",
		toml: `
[ssh]
tunnel = "t"
[interfaces]
private = "eth0"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.u]
role = "tunnel"
private_ip = "198.18.0.2"
private_iface = "eth1"
public_iface = "eth1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:3: interfaces: public and private interface are both "eth0": they must differ`,
			`bad.toml:12: hosts.u.private_iface: public and private interface are both "eth1": they must differ`,
		},
	},

	{
		name: "no hosts at all",
		toml: `
[ssh]
tunnel = "t"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml: hosts: no hosts: add at least a [hosts.NAME] table for the tunnel host`,
			`bad.toml:2: ssh.tunnel: host "t" does not exist: the tunnel must be one of [hosts]`,
		},
	},
	// Sites and bastion lists.
	{
		name: "bad site names",
		toml: `
[sites."dc 1"]
tunnel = "b"
[sites.-dc2]
tunnel = "c"
[hosts.b]
role = "tunnel"
site = "dc 1"
public_ip = "203.0.113.1"
[hosts.c]
role = "tunnel"
site = "-dc2"
public_ip = "203.0.113.2"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:1: sites.dc 1: invalid site name "dc 1": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
			`bad.toml:3: sites.-dc2: invalid site name "-dc2": use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63 characters`,
		},
	},
	{
		name: "a host without a site, and one in a site that does not exist",
		toml: `
[sites.a]
tunnel = "b-1"
[hosts.b-1]
role = "tunnel"
site = "a"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.db-1]
role = "tunnel"
private_ip = "198.18.0.2"
[hosts.db-2]
role = "tunnel"
site = "c"
private_ip = "198.18.0.3"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:8: hosts.db-1.site: missing: with [sites], every host names the site it is in (sites: a)`,
			`bad.toml:13: hosts.db-2.site: site "c" does not exist (sites: a)`,
		},
	},
	{
		name: "a site in an inventory without sites",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
site = "dc1"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:5: hosts.t.site: site "dc1" does not exist: declare it with [sites.dc1] and its bastions (tunnel = "NAME")`},
	},
	{
		name: "ssh.tunnel next to sites, and a site without a tunnel",
		toml: `
[ssh]
tunnel = "b-1"
[sites.a]
tunnel = "b-1"
[sites.b]
[hosts.b-1]
role = "tunnel"
site = "a"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:2: ssh.tunnel: with [sites], each site names its own bastions: move tunnel to [sites.NAME]`,
			`bad.toml:5: sites.b.tunnel: missing: name the bastion the site's hosts are reached through (tunnel = "NAME", or a list in order of preference)`,
		},
	},
	{
		name: "a bastion in another site",
		toml: `
[sites.a]
tunnel = ["a-1", "b-1"]
[sites.b]
tunnel = "b-1"
[hosts.a-1]
role = "tunnel"
site = "a"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.b-1]
role = "tunnel"
site = "b"
public_ip = "203.0.113.2"
private_ip = "198.18.1.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:2: sites.a.tunnel[1]: host "b-1" is in site "b": a site's bastions must be among its own hosts`},
	},
	{
		name: "bastion lists",
		toml: `
[ssh]
tunnel = ["t", "t", 3, "nobody", ""]
[sites]
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[hosts.u]
role = "tunnel"
public_ip = "203.0.113.2"
private_ip = "198.18.0.2"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{
			`bad.toml:2: ssh.tunnel[1]: "t" is listed twice`,
			`bad.toml:2: ssh.tunnel[2]: wrong type: expected a string, found an integer`,
			`bad.toml:2: ssh.tunnel[4]: an empty name: name a host`,
			`bad.toml:2: ssh.tunnel[3]: host "nobody" does not exist: the tunnel must be one of [hosts]`,
			`bad.toml:3: sites: no site: add a [sites.NAME] table with the site's bastions (tunnel = "NAME"), or remove [sites]`,
			`bad.toml:4: hosts.t.private_ip: missing: the other hosts accept SSH from the tunnel's private IP`,
		},
	},
	{
		name: "a tunnel that is neither a name nor a list",
		toml: `
[ssh]
tunnel = 3
port = "22"
[sites.a]
tunnel = []
`,
		want: []string{
			`bad.toml:2: ssh.tunnel: wrong type: expected a host name or a list of host names, found an integer`,
			`bad.toml:3: ssh.port: wrong type: expected an integer, found a string`,
			`bad.toml:5: sites.a.tunnel: an empty list names no host: name the bastions in order of preference`,
		},
	},
	{
		name: "cross-site flows from and to hosts without a public address",
		toml: `
[sites.a]
tunnel = "ba"
[sites.b]
tunnel = "bb"
[hosts.ba]
role = "tunnel"
site = "a"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.bb]
role = "tunnel"
site = "b"
public_ip = "203.0.113.2"
private_ip = "198.18.1.1"
[hosts]
app-1 = { role = "app", site = "a", private_ip = "198.18.0.2" }
app-2 = { role = "app", site = "a", private_ip = "198.18.0.3" }
app-3 = { role = "app", site = "a", private_ip = "198.18.0.4", public_ip6 = "2001:db8::4" }
db-1 = { role = "db", site = "b", private_ip = "198.18.1.2", public_ip = "203.0.113.5" }
db-2 = { role = "db", site = "b", private_ip = "198.18.1.3", public_ip6 = "2001:db8::6" }
db-3 = { role = "db", site = "b", private_ip = "198.18.1.4" }
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.app]
template = "private"
[roles.db]
template = "private"
allow = [
  { from = "app", tcp = [3306], cross_site = "ok" },
  { from = "db", tcp = [3306], cross_site = "yes" },
]
`,
		want: []string{
			`bad.toml:30: roles.db.allow[0].from: app-1 and app-2 in site a have no public address: the flow reaches db in site b over the internet, from public addresses only (set public_ip or public_ip6)`,
			`bad.toml:30: roles.db.allow[0]: db-3 in site b has no public address: app in site a reaches it over the internet, on public addresses only (set public_ip or public_ip6)`,
			`bad.toml:30: roles.db.allow[0]: app-3 in site a and db-1 in site b have no public address of the same family (public_ip, public_ip6): the flow cannot cross the internet between them`,
			`bad.toml:31: roles.db.allow[1].cross_site: "yes" is not a value cross_site takes: "ok" says that the flow may cross the internet between sites as it is`,
		},
	},
	{
		name: "chain patterns to preserve",
		toml: `
[ssh]
tunnel = "t"
[firewall]
preserve = ["DOCKER*", "", "f2b-[", "*", "IN?UT", "f2b sshd", "-x", "!x"]
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
preserve = [
  "KUBE-*",
  "*PUT",
]
`,
		want: []string{
			`bad.toml:4: firewall.preserve[1]: an empty pattern matches no chain: name a chain, or a glob such as "f2b-*"`,
			`bad.toml:4: firewall.preserve[2]: "f2b-[" is not a valid pattern: syntax error in pattern (patterns use *, ? and [...], as in "DOCKER*")`,
			`bad.toml:4: firewall.preserve[3]: "*" matches the built-in chain INPUT: fwpush owns INPUT, FORWARD and OUTPUT (the jumps they hold into a preserved chain are kept, not the chain itself)`,
			`bad.toml:4: firewall.preserve[4]: "IN?UT" matches the built-in chain INPUT: fwpush owns INPUT, FORWARD and OUTPUT (the jumps they hold into a preserved chain are kept, not the chain itself)`,
			`bad.toml:4: firewall.preserve[5]: "f2b sshd" matches no chain: chain names hold no whitespace or quotes and start with neither '-' nor '!'`,
			`bad.toml:4: firewall.preserve[6]: "-x" matches no chain: chain names hold no whitespace or quotes and start with neither '-' nor '!'`,
			`bad.toml:4: firewall.preserve[7]: "!x" matches no chain: chain names hold no whitespace or quotes and start with neither '-' nor '!'`,
			`bad.toml:14: roles.tunnel.preserve[1]: "*PUT" matches the built-in chain INPUT: fwpush owns INPUT, FORWARD and OUTPUT (the jumps they hold into a preserved chain are kept, not the chain itself)`,
		},
	},
	{
		name: "backends",
		toml: `
[ssh]
tunnel = "t"
[firewall]
backend = "nft"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
backend = "ipfw"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
backend = "NFTables"
`,
		want: []string{
			`bad.toml:4: firewall.backend: "nft" is not a firewall backend: use "iptables" (the default: the filter table, with iptables-restore) or "nftables" (a table of fwpush's own, with nft)`,
			`bad.toml:9: hosts.t.backend: "ipfw" is not a firewall backend: use "iptables" (the default: the filter table, with iptables-restore) or "nftables" (a table of fwpush's own, with nft)`,
			`bad.toml:13: roles.tunnel.backend: "NFTables" is not a firewall backend: use "iptables" (the default: the filter table, with iptables-restore) or "nftables" (a table of fwpush's own, with nft)`,
		},
	},
	{
		name: "a pattern instead of a list of them",
		toml: `
[roles.other]
template = "private"
preserve = "DOCKER*"
`,
		want: []string{`bad.toml:3: roles.other.preserve: wrong type: expected an array, found a string`},
	},
	{
		name: "unknown key in [firewall]",
		toml: `
[ssh]
tunnel = "t"
[firewall]
preserv = ["DOCKER*"]
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
[roles.tunnel]
template = "tunnel"
`,
		want: []string{`bad.toml:4: firewall.preserv: unknown key "preserv" in [firewall]; did you mean "preserve"?`},
	},
	{
		name: "several problems, sorted by line",
		toml: `
[ssh]
tunnel = "bastion-1"
port = 22
timeout = "5"

[hosts.bastion-1]
role = "tunnel"
public_ip = "203.0.113.10"
private_ip = "198.18.0.10"

[hosts.web-1]
role = "app"
private_ip = "198.18.0.10"
private_iface = "eth1/"

[hosts.db-1]
role = "database"
privat_ip = "198.18.0.31"

[roles.tunnel]
template = "tunnel"
public_tcp = [22]

[roles.app]
template = "private"
allow = [
  { from = "tunnel", tcp = [80] },
  { from = "db", tcp = [3306] },
]
`,
		want: []string{
			`bad.toml:4: ssh.timeout: "5" is not a duration (such as "10s" or "1m")`,
			`bad.toml:13: hosts.web-1.private_ip: 198.18.0.10 is already used by hosts.bastion-1.private_ip`,
			`bad.toml:14: hosts.web-1.private_iface: "eth1/" is not a valid Linux interface name (1-15 characters, no '/', ':', quotes, '#' or whitespace)`,
			`bad.toml:16: hosts.db-1.private_ip: missing: hosts other than the tunnel are reached on their private IP`,
			`bad.toml:17: hosts.db-1.role: role "database" does not exist (roles: app, tunnel)`,
			`bad.toml:18: hosts.db-1.privat_ip: unknown key "privat_ip" in [hosts.db-1]; did you mean "private_ip"?`,
			`bad.toml:28: roles.app.allow[1].from: "db" is neither a role nor a CIDR (roles: app, tunnel)`,
		},
	},
}

func TestParseBad(t *testing.T) {
	for _, tc := range badInventories {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.TrimPrefix(tc.toml, "\n")
			inv, err := Parse("bad.toml", []byte(src))
			if err == nil {
				t.Fatalf("Parse accepted a bad inventory: %+v", inv)
			}
			if inv != nil {
				t.Errorf("Parse returned an inventory with its error")
			}
			var ierr *Error
			if !errors.As(err, &ierr) {
				t.Fatalf("error is a %T, want *Error: %v", err, err)
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// Keys that are valid but have no effect, or open more than meant, are
// warnings: the inventory loads, and each names its file, line and key.
var warnInventories = []struct {
	name string
	toml string
	want []string
}{
	{
		name: "SSH port in public_tcp of a role reached through the tunnel",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.lb-1]
role = "lb"
public_ip = "203.0.113.2"
private_ip = "198.18.0.2"
[hosts.lb-2]
role = "lb"
public_ip = "203.0.113.3"
private_ip = "198.18.0.3"
port = 2222
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.lb]
template = "public"
public_tcp = [22, 443, 2222]
`,
		want: []string{
			`warn.toml:21: roles.lb.public_tcp: warning: 22 is the SSH port of lb-1: public_tcp opens SSH to the internet on a role that is reached through the tunnel`,
			`warn.toml:21: roles.lb.public_tcp: warning: 2222 is the SSH port of lb-2: public_tcp opens SSH to the internet on a role that is reached through the tunnel`,
		},
	},
	{
		// The tunnel's role, and a standby bastion's, are meant to be
		// reached from the internet.
		name: "SSH port in public_tcp of the tunnel's role or a tunnel template",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "gate"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.standby]
role = "bastion"
public_ip = "203.0.113.2"
private_ip = "198.18.0.2"
[roles.gate]
template = "gate.tmpl"
public_tcp = [22]
[roles.bastion]
template = "tunnel"
public_tcp = [22]
`,
		want: nil,
	},
	{
		name: "public_tcp on hosts without a public address",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.lb-1]
role = "lb"
public_ip6 = "2001:db8::2"
private_ip = "198.18.0.2"
[hosts.lb-2]
role = "lb"
private_ip = "198.18.0.3"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.lb]
template = "public"
public_tcp = [80, 443]
`,
		want: []string{`warn.toml:11: hosts.lb-2: warning: role "lb" opens public_tcp 80, 443, but the host has neither public_ip nor public_ip6: nothing is opened on it`},
	},
	{
		name: "public addresses of private hosts",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.db-1]
role = "db"
private_ip = "198.18.0.2"
public_ip6 = "2001:db8::2"
[hosts.db-2]
role = "db"
private_ip = "198.18.0.3"
public_ip = "203.0.113.3"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.db]
template = "private"
`,
		want: []string{
			`warn.toml:10: hosts.db-1.public_ip6: warning: role "db" uses the private template, which opens nothing on the public interface: public_ip6 changes no rule`,
			`warn.toml:14: hosts.db-2.public_ip: warning: role "db" uses the private template, which opens nothing on the public interface: public_ip changes no rule`,
		},
	},
	{
		name: "allow entries that repeat another",
		toml: `
[ssh]
tunnel = "t"
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[hosts.a]
role = "app"
private_ip = "198.18.0.2"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.app]
template = "private"
allow = [
  { from = "tunnel", tcp = [80, 443] },
  { from = "tunnel", tcp = [443, 8080] },
  { from = "tunnel", tcp = [80] },
  { from = "app" },
  { from = "app", tcp = [9100], udp = [53] },
  { from = "app" },
  { from = "198.51.100.0/24", udp = [53, 161] },
  { from = "198.51.100.128/25", udp = [161] },
  { from = "198.51.100.0/25", tcp = [22], udp = [53] },
  { from = "198.51.100.0/24", udp = [161, 161] },
]
`,
		want: []string{
			`warn.toml:17: roles.app.allow[1]: warning: tcp 443 from tunnel is already allowed by allow[0]`,
			`warn.toml:18: roles.app.allow[2]: warning: duplicates allow[0]: it allows nothing more`,
			`warn.toml:20: roles.app.allow[4]: warning: tcp 9100 from app is already allowed by allow[3]`,
			`warn.toml:21: roles.app.allow[5]: warning: duplicates allow[3]: it allows nothing more`,
			`warn.toml:23: roles.app.allow[7]: warning: duplicates allow[6]: it allows nothing more`,
			`warn.toml:24: roles.app.allow[8]: warning: udp 53 from 198.51.100.0/25 is already allowed by allow[6]`,
			`warn.toml:25: roles.app.allow[9].udp[1]: warning: port 161 is listed twice`,
			`warn.toml:25: roles.app.allow[9]: warning: duplicates allow[6]: it allows nothing more`,
		},
	},
	{
		name: "flows between sites",
		toml: `
[sites.a]
tunnel = "ba"
[sites.b]
tunnel = "bb"
[sites.c]
tunnel = "bc"
[hosts]
ba = { role = "tunnel", site = "a", public_ip = "203.0.113.1", private_ip = "198.18.0.1" }
bb = { role = "tunnel", site = "b", public_ip = "203.0.113.2", private_ip = "198.18.1.1" }
bc = { role = "tunnel", site = "c", public_ip = "203.0.113.3", private_ip = "198.18.2.1" }
app-1 = { role = "app", site = "a", private_ip = "198.18.0.2", public_ip = "203.0.113.4" }
app-2 = { role = "app", site = "a", private_ip = "198.18.0.3", public_ip6 = "2001:db8::5" }
db-1 = { role = "db", site = "b", private_ip = "198.18.1.2", public_ip = "203.0.113.6", public_ip6 = "2001:db8::6" }
db-2 = { role = "db", site = "c", private_ip = "198.18.2.2", public_ip = "203.0.113.7", public_ip6 = "2001:db8::7" }
cache-1 = { role = "cache", site = "b", private_ip = "198.18.1.3", public_ip = "203.0.113.8", public_ip6 = "2001:db8::8" }
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.app]
template = "private"
[roles.cache]
template = "private"
allow = [
  { from = "app", tcp = [6379] },
  { from = "198.51.100.0/24", tcp = [9100], cross_site = "ok" },
  { from = "cache", tcp = [16379], cross_site = "ok" },
]
[roles.db]
template = "private"
allow = [
  { from = "app", tcp = [3306] },
  { from = "app", tcp = [33060], cross_site = "ok" },
  { from = "db", tcp = [3306] },
]
`,
		want: []string{
			`warn.toml:24: roles.cache.allow[0]: warning: this flow crosses the internet between sites a and b, unencrypted unless the application encrypts it: once it does, or to accept that, mark the entry cross_site = "ok"; so do roles.db.allow[0]`,
			`warn.toml:25: roles.cache.allow[1].cross_site: warning: a CIDR source is on the private network of each site: cross_site has no effect`,
			`warn.toml:26: roles.cache.allow[2].cross_site: warning: no host of cache is in another site than a host of cache: cross_site has no effect`,
			`warn.toml:31: roles.db.allow[0]: warning: this flow crosses the internet between sites a and c, unencrypted unless the application encrypts it: once it does, or to accept that, mark the entry cross_site = "ok"`,
			`warn.toml:33: roles.db.allow[2]: warning: this flow crosses the internet between sites b and c, unencrypted unless the application encrypts it: once it does, or to accept that, mark the entry cross_site = "ok"`,
		},
	},
	{
		// A public address a flow between sites uses changes rules, even
		// on a host of the private template; one none uses does not.
		name: "public addresses of private hosts in flows between sites",
		toml: `
[sites.a]
tunnel = "ba"
[sites.b]
tunnel = "bb"
[hosts]
ba = { role = "tunnel", site = "a", public_ip = "203.0.113.1", private_ip = "198.18.0.1" }
bb = { role = "tunnel", site = "b", public_ip = "203.0.113.2", private_ip = "198.18.1.1" }
app-1 = { role = "app", site = "a", private_ip = "198.18.0.2", public_ip = "203.0.113.4", public_ip6 = "2001:db8::4" }
db-1 = { role = "db", site = "b", private_ip = "198.18.1.2", public_ip = "203.0.113.6" }
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
[roles.app]
template = "private"
[roles.db]
template = "private"
allow = [ { from = "app", tcp = [3306], cross_site = "ok" } ]
`,
		want: []string{
			`warn.toml:8: hosts.app-1.public_ip6: warning: role "app" uses the private template, which opens nothing on the public interface: public_ip6 changes no rule`,
		},
	},
	{
		name: "chain patterns listed twice",
		toml: `
[ssh]
tunnel = "t"
[firewall]
preserve = ["f2b-*", "DOCKER*", "f2b-*"]
[hosts.t]
role = "tunnel"
public_ip = "203.0.113.1"
private_ip = "198.18.0.1"
[roles.tunnel]
template = "tunnel"
public_tcp = [22]
preserve = ["KUBE-*", "DOCKER*"]
`,
		want: []string{
			`warn.toml:4: firewall.preserve[2]: warning: "f2b-*" is listed twice`,
			`warn.toml:12: roles.tunnel.preserve[1]: warning: "DOCKER*" is already kept on every host by firewall.preserve`,
		},
	},
}

func TestParseWarnings(t *testing.T) {
	for _, tc := range warnInventories {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse("warn.toml", []byte(strings.TrimPrefix(tc.toml, "\n")))
			if err != nil {
				t.Fatalf("warnings must not make an inventory invalid: %v", err)
			}
			var got []string
			for _, w := range inv.Warnings {
				if !w.Warning {
					t.Errorf("warning not marked as one: %+v", w)
				}
				got = append(got, w.Format(inv.Path))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// The examples are what operators copy: they must not warn.
func TestExamplesDoNotWarn(t *testing.T) {
	for _, file := range []string{"site.toml", "large.toml", "custom.toml", "sites.toml", "mixed.toml"} {
		inv, err := Load(filepath.Join("..", "examples", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range inv.Warnings {
			t.Errorf("%s", w.Format(inv.Path))
		}
	}
}
