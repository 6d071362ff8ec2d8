package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// SSHConfig is OpenSSH's client configuration (ssh_config(5)), read with
// github.com/kevinburke/ssh_config, for what an operator's `ssh` already
// knows about a host: its User, Port, IdentityFile, UserKnownHostsFile
// and GlobalKnownHostsFile, HashKnownHosts, and the ProxyJump through the
// tunnel. It is looked up by the inventory's name of a host, by the
// aliases whose HostName is the host's address, and by the address, so
// that `Host mysql-1`, `Host db-1` with `HostName 198.18.0.31`, and
// `Host 198.18.0.*` all apply. As in OpenSSH, the first value found wins,
// the user's file before the system's.
type SSHConfig struct {
	files []*ssh_config.Config
	// Paths are the files read, in order.
	Paths []string
}

// DefaultSSHConfigFiles are the files OpenSSH reads without -F: the
// user's, then the system's.
func DefaultSSHConfigFiles() []string {
	return []string{"~/.ssh/config", "/etc/ssh/ssh_config"}
}

// LoadSSHConfig reads the ssh_config files at paths ("~/" expanded),
// skipping those that do not exist.
func LoadSSHConfig(paths ...string) (*SSHConfig, error) {
	c := &SSHConfig{}
	for _, p := range paths {
		path, err := expandHome(p)
		if err != nil {
			return nil, fmt.Errorf("ssh_config %s: %w", p, err)
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read ssh_config: %w", err)
		}
		cfg, err := ssh_config.Decode(bytes.NewReader(data))
		if errors.Is(err, ssh_config.ErrDepthExceeded) {
			return nil, fmt.Errorf("ssh_config %s: Include nests more than 5 files deep: an Include loop?", path)
		}
		if err != nil {
			return nil, fmt.Errorf("ssh_config %s: %w", path, err)
		}
		c.files = append(c.files, cfg)
		c.Paths = append(c.Paths, path)
	}
	return c, nil
}

// HostConfig is what ssh_config says about one host; empty fields say
// nothing.
type HostConfig struct {
	User string
	Port int
	// IdentityFiles are every IdentityFile that applies, in order (they
	// add up, as in OpenSSH), "~" and %-tokens expanded.
	IdentityFiles []string
	// UserKnownHosts are the files of the first UserKnownHostsFile.
	UserKnownHosts []string
	// GlobalKnownHosts are the files of GlobalKnownHostsFile, OpenSSH's
	// /etc/ssh/ssh_known_hosts and ssh_known_hosts2 when it says none.
	GlobalKnownHosts []string
	HashKnownHosts   bool
}

// Lookup returns what the configuration says about the host the inventory
// names name at address addr. A ProxyJump anywhere in the configuration
// whose host is this one (by alias, HostName or address) lends it its
// user and port (ProxyJump [user@]host[:port]): that is how an operator
// whose `ssh -J bastion db-1` works describes the tunnel.
func (c *SSHConfig) Lookup(name, addr string) HostConfig {
	var hc HostConfig
	if c == nil || len(c.files) == 0 {
		hc.GlobalKnownHosts = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
		return hc
	}
	aliases := []string{name}
	for _, a := range c.aliasesOf(addr) {
		if !slices.Contains(aliases, a) {
			aliases = append(aliases, a)
		}
	}
	aliases = append(aliases, addr)
	var jumpUser string
	var jumpPort int
	for _, j := range c.jumps() {
		if slices.Contains(aliases, j.host) {
			jumpUser, jumpPort = j.user, j.port
			break
		}
	}

	hc.User = jumpUser
	if hc.User == "" {
		hc.User = c.get(aliases, "User")
	}
	hc.Port = jumpPort
	if hc.Port == 0 {
		if p, err := strconv.Atoi(c.get(aliases, "Port")); err == nil && p > 0 && p < 65536 {
			hc.Port = p
		}
	}
	tokens := expander(addr, hc.User)
	for _, f := range c.getAll(aliases, "IdentityFile") {
		if !strings.EqualFold(f, "none") && !slices.Contains(hc.IdentityFiles, tokens(f)) {
			hc.IdentityFiles = append(hc.IdentityFiles, tokens(f))
		}
	}
	for _, f := range strings.Fields(c.get(aliases, "UserKnownHostsFile")) {
		if !strings.EqualFold(f, "none") {
			hc.UserKnownHosts = append(hc.UserKnownHosts, tokens(f))
		}
	}
	hc.GlobalKnownHosts = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	if g := c.get(aliases, "GlobalKnownHostsFile"); g != "" {
		hc.GlobalKnownHosts = nil
		for _, f := range strings.Fields(g) {
			if !strings.EqualFold(f, "none") {
				hc.GlobalKnownHosts = append(hc.GlobalKnownHosts, tokens(f))
			}
		}
	}
	hc.HashKnownHosts = strings.EqualFold(c.get(aliases, "HashKnownHosts"), "yes")
	return hc
}

// Ignored returns the keys ssh_config sets for a host, by its name or one
// of its addresses, that fwpush does not act on: ProxyCommand (fwpush
// reaches hosts through the inventory's bastions, as ProxyJump would),
// KnownHostsCommand (it reads known_hosts files only) and LocalCommand
// (with PermitLocalCommand yes). None is "none".
func (c *SSHConfig) Ignored(name string, addrs ...string) []string {
	if c == nil || len(c.files) == 0 {
		return nil
	}
	aliases := []string{name}
	for _, addr := range addrs {
		for _, a := range append(c.aliasesOf(addr), addr) {
			if !slices.Contains(aliases, a) {
				aliases = append(aliases, a)
			}
		}
	}
	var out []string
	for _, key := range []string{"ProxyCommand", "KnownHostsCommand", "LocalCommand"} {
		v := c.get(aliases, key)
		if v == "" || strings.EqualFold(v, "none") {
			continue
		}
		if key == "LocalCommand" && !strings.EqualFold(c.get(aliases, "PermitLocalCommand"), "yes") {
			continue
		}
		out = append(out, key)
	}
	return out
}

// get returns the first value of key for any of aliases: file by file,
// alias by alias within a file.
func (c *SSHConfig) get(aliases []string, key string) string {
	for _, f := range c.files {
		for _, a := range aliases {
			if v, err := f.Get(a, key); err == nil && v != "" {
				return v
			}
		}
	}
	return ""
}

// getAll returns every value of key for aliases, in the order of get.
func (c *SSHConfig) getAll(aliases []string, key string) []string {
	var out []string
	for _, f := range c.files {
		for _, a := range aliases {
			vs, err := f.GetAll(a, key)
			if err != nil {
				continue
			}
			for _, v := range vs {
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// aliasesOf returns the literal Host aliases (no wildcard, no negation)
// whose HostName is addr.
func (c *SSHConfig) aliasesOf(addr string) []string {
	var out []string
	for _, f := range c.files {
		for _, h := range f.Hosts {
			for _, p := range h.Patterns {
				alias := p.String()
				if strings.ContainsAny(alias, "*?!") || slices.Contains(out, alias) {
					continue
				}
				if hn, err := f.Get(alias, "HostName"); err == nil && hn == addr {
					out = append(out, alias)
				}
			}
		}
	}
	return out
}

// jump is the last hop of a ProxyJump: the host that opens the
// connection to the target.
type jump struct {
	user, host string
	port       int
}

// jumps returns the last hop of every ProxyJump in the configuration.
func (c *SSHConfig) jumps() []jump {
	var out []jump
	for _, f := range c.files {
		for _, h := range f.Hosts {
			for _, n := range h.Nodes {
				kv, ok := n.(*ssh_config.KV)
				if !ok || !strings.EqualFold(kv.Key, "ProxyJump") || strings.EqualFold(kv.Value, "none") {
					continue
				}
				hops := strings.Split(kv.Value, ",")
				if j, ok := parseJump(strings.TrimSpace(hops[len(hops)-1])); ok {
					out = append(out, j)
				}
			}
		}
	}
	return out
}

// parseJump reads [user@]host[:port] (or ssh://[user@]host[:port]).
func parseJump(s string) (jump, bool) {
	s = strings.TrimPrefix(s, "ssh://")
	var j jump
	if at := strings.LastIndex(s, "@"); at >= 0 {
		j.user, s = s[:at], s[at+1:]
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return jump{}, false
		}
		j.host, j.port = host, p
	} else {
		j.host = strings.Trim(s, "[]")
	}
	return j, j.host != ""
}

// expander expands what ssh_config(5) allows in file names: a leading ~,
// and the tokens %d (home), %u (local user), %h (the host), %r (the
// remote user) and %%.
func expander(host, remoteUser string) func(string) string {
	return func(s string) string {
		if p, err := expandHome(s); err == nil {
			s = p
		}
		if !strings.Contains(s, "%") {
			return s
		}
		home, _ := os.UserHomeDir()
		local := ""
		if u, err := user.Current(); err == nil {
			local = u.Username
		}
		r := strings.NewReplacer("%%", "%", "%d", home, "%u", local, "%h", host, "%r", remoteUser)
		return r.Replace(s)
	}
}
