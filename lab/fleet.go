package lab

import (
	"fmt"
	"strings"
)

// FleetTOML returns an inventory of n hosts (n >= 2) shaped like the
// tutorial's fleet, for labs of any size (tests, make bench): a tunnel and
// a load balancer with public addresses, then app and db servers on the
// private network only, two app servers to one db server, 200 to a /24
// (198.18.0.0/24, 198.18.1.0/24, ...). It stays within MaxHosts as long as
// n does.
func FleetTOML(n int) []byte {
	var b strings.Builder
	b.WriteString(`[ssh]
tunnel = "tunnel-1"

[hosts.tunnel-1]
role       = "tunnel"
public_ip  = "203.0.113.10"
private_ip = "198.18.0.10"

[hosts.lb-1]
role       = "lb"
public_ip  = "203.0.113.11"
private_ip = "198.18.0.11"
public_ip6 = "2001:db8::11"
`)
	for i := range n - 2 {
		role := "app"
		if i%3 == 2 {
			role = "db"
		}
		fmt.Fprintf(&b, "\n[hosts.%s-%d]\nrole       = %q\nprivate_ip = \"198.18.%d.%d\"\n", role, i+1, role, i/200, 20+i%200)
	}
	b.WriteString(`
[roles.tunnel]
template   = "tunnel"
public_tcp = [22]

[roles.lb]
template   = "public"
public_tcp = [80, 443]

[roles.app]
template = "private"
allow    = [ { from = "lb", tcp = [80] }, { from = "app" } ]

[roles.db]
template = "private"
allow    = [ { from = "app", tcp = [3306] } ]
`)
	return []byte(b.String())
}
