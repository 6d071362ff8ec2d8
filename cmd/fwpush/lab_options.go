package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

// labUpFlags are lab up's options for the hosts (lab.Options). Each value
// may start with HOST= to apply to that host only; without, it applies to
// every host.
type labUpFlags struct {
	noRootLogin  []string
	noPersistent []string
	sudo         []string
	password     []string
	packages     []string
	files        []string
}

// allHosts is the value of a host-list flag given without one.
const allHosts = "all"

func (f *labUpFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVar(&f.noRootLogin, "no-root-login", nil, "turn root's login off, as on cloud images, on every host or on the `HOSTS` listed (--no-root-login=web-1,web-2)")
	fs.Lookup("no-root-login").NoOptDefVal = allHosts
	fs.StringSliceVar(&f.noPersistent, "no-persistent", nil, "bring every host, or the `HOSTS` listed, up without iptables-persistent, so that fwpush run installs it for real")
	fs.Lookup("no-persistent").NoOptDefVal = allHosts
	fs.StringArrayVar(&f.sudo, "sudo", nil, "what the login user may do with sudo, on every host or one (`[HOST=]RIGHTS`): nopasswd (default), password or none")
	fs.StringArrayVar(&f.password, "password", nil, "the login user's password (`[HOST=]PASSWORD`), which --sudo password asks for; ssh never accepts it")
	fs.StringArrayVar(&f.packages, "package", nil, "install a package from the lab's local apt repository (`[HOST=]PACKAGE`, repeatable: ufw, nftables, ...)")
	fs.StringArrayVar(&f.files, "file", nil, "write the local file LOCAL into the hosts at PATH (`[HOST=]PATH=LOCAL`, repeatable: /etc/nftables.conf, ...)")
}

// options turns the flags into lab.Options for inv's hosts.
func (f *labUpFlags) options(inv *inventory.Inventory) (lab.Options, error) {
	o := lab.Options{Hosts: map[string]lab.HostOptions{}}
	isHost := func(name string) bool {
		return slices.ContainsFunc(inv.Hosts, func(h *inventory.Host) bool { return h.Name == name })
	}
	// each calls set on the options of every host a value names: the host
	// before '=' when it is one of the inventory's, else every host.
	each := func(flag string, values []string, set func(*lab.HostOptions, string) error) error {
		for _, v := range values {
			h, rest, ok := strings.Cut(v, "=")
			if !ok || !isHost(h) {
				if err := set(&o.Host, v); err != nil {
					return fmt.Errorf("--%s %s: %w", flag, v, err)
				}
				continue
			}
			one := o.Hosts[h]
			if err := set(&one, rest); err != nil {
				return fmt.Errorf("--%s %s: %w", flag, v, err)
			}
			o.Hosts[h] = one
		}
		return nil
	}
	// hostList applies a flag whose value is "all" or a list of hosts.
	hostList := func(flag string, values []string, set func(*lab.HostOptions)) error {
		for _, h := range values {
			switch {
			case h == allHosts:
				set(&o.Host)
			case isHost(h):
				one := o.Hosts[h]
				set(&one)
				o.Hosts[h] = one
			default:
				return fmt.Errorf("--%s: the inventory has no host %q", flag, h)
			}
		}
		return nil
	}
	errs := []error{
		hostList("no-root-login", f.noRootLogin, func(h *lab.HostOptions) { h.NoRootLogin = true }),
		hostList("no-persistent", f.noPersistent, func(h *lab.HostOptions) { h.NoPersistent = true }),
		each("sudo", f.sudo, func(h *lab.HostOptions, v string) error {
			s, err := lab.ParseSudo(v)
			h.Sudo = s
			return err
		}),
		each("password", f.password, func(h *lab.HostOptions, v string) error {
			h.Password = v
			return nil
		}),
		each("package", f.packages, func(h *lab.HostOptions, v string) error {
			h.Packages = append(h.Packages, v)
			return nil
		}),
		each("file", f.files, func(h *lab.HostOptions, v string) error {
			path, local, ok := strings.Cut(v, "=")
			if !ok {
				return fmt.Errorf("want PATH=LOCAL")
			}
			data, err := os.ReadFile(local)
			if err != nil {
				return err
			}
			if h.Files == nil {
				h.Files = map[string]string{}
			}
			h.Files[path] = string(data)
			return nil
		}),
	}
	for _, err := range errs {
		if err != nil {
			return lab.Options{}, &inputError{err}
		}
	}
	return o, nil
}
