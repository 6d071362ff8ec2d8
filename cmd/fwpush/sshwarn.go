package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/runner/transport"
)

// ignoredWhy says, for each ssh_config key fwpush does not act on, what it
// does instead (see transport.SSHConfig.Ignored).
var ignoredWhy = []struct{ key, why string }{
	{"ProxyCommand", "it reaches every host through the inventory's bastions ([ssh] tunnel, or a site's tunnel list), as ProxyJump would"},
	{"KnownHostsCommand", "it checks host keys against known_hosts files only (--known-hosts, [ssh] known_hosts, UserKnownHostsFile)"},
	{"LocalCommand", "it runs nothing on this machine after connecting"},
}

// warnIgnored warns on w, once per key, of the ssh_config keys set for
// inventory hosts that fwpush does not act on, naming the hosts: a user
// whose ssh reaches a host only through a ProxyCommand must learn why
// fwpush does not.
func warnIgnored(inv *inventory.Inventory, cfg *transport.SSHConfig, w io.Writer) {
	hosts := map[string][]string{}
	for _, h := range inv.Hosts {
		var addrs []string
		for _, a := range []netip.Addr{h.PrivateIP, h.PublicIP, h.PublicIP6} {
			if a.IsValid() {
				addrs = append(addrs, a.String())
			}
		}
		for _, k := range cfg.Ignored(h.Name, addrs...) {
			hosts[k] = append(hosts[k], h.Name)
		}
	}
	for _, k := range ignoredWhy {
		if len(hosts[k.key]) > 0 {
			fmt.Fprintf(w, "fwpush: warning: ssh_config sets %s for %s: fwpush does not run it; %s\n", k.key, someHosts(hosts[k.key]), k.why)
		}
	}
}

// someHosts names hosts, the first few of many.
func someHosts(names []string) string {
	const shown = 5
	s := pluralize(len(names), "host", "hosts")
	if len(names) > shown {
		return s + " (" + strings.Join(names[:shown], ", ") + ", ...)"
	}
	return s + " (" + strings.Join(names, ", ") + ")"
}
