package lab

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Sudo is what a host's login user may do with sudo. It applies to a login
// user other than root; root needs no sudo.
type Sudo string

// The sudo rights a lab can give. The zero value is SudoNopasswd.
const (
	// SudoNopasswd: anything as root without a password, the rule of cloud
	// images ("deploy ALL=(ALL:ALL) NOPASSWD: ALL").
	SudoNopasswd Sudo = "nopasswd"
	// SudoPassword: anything as root after typing the user's password
	// (HostOptions.Password).
	SudoPassword Sudo = "password"
	// SudoNone: no sudo rights at all.
	SudoNone Sudo = "none"
)

// ParseSudo reads a Sudo from its name; "" is SudoNopasswd.
func ParseSudo(s string) (Sudo, error) {
	switch Sudo(s) {
	case "", SudoNopasswd:
		return SudoNopasswd, nil
	case SudoPassword, SudoNone:
		return Sudo(s), nil
	}
	return "", fmt.Errorf("sudo %q: want %s, %s or %s", s, SudoNopasswd, SudoPassword, SudoNone)
}

// Options shape the lab's hosts beyond what the inventory says. The zero
// value is the inventory's fleet as a cloud provider hands it over: each
// host's login user exists with the lab's key and passwordless sudo, root
// may log in with the lab's key too, and the packages are the machine's.
type Options struct {
	// Host applies to every host.
	Host HostOptions
	// Hosts applies to single hosts, by name, on top of Host: a flag is set
	// when either sets it, a Sudo or Password given here wins, Packages
	// add up and Files here win over Host's for the same path.
	Hosts map[string]HostOptions
}

// HostOptions shape one host.
type HostOptions struct {
	// NoRootLogin turns root's login off (PermitRootLogin no, no key in
	// /root/.ssh), as on cloud images; the login user must not be root.
	NoRootLogin bool `json:"no_root_login,omitempty"`
	// Sudo is what the login user may do with sudo; "" is SudoNopasswd.
	Sudo Sudo `json:"sudo,omitempty"`
	// Password is the login user's password, which SudoPassword asks for.
	// SSH never accepts it: logins are by key only.
	Password string `json:"password,omitempty"`
	// NoPersistent brings the host up without iptables-persistent,
	// ipset-persistent and netfilter-persistent (purged: dpkg says not
	// installed), so that installing them is rehearsed for real.
	NoPersistent bool `json:"no_persistent,omitempty"`
	// Packages are installed on the host from the lab's local apt
	// repository when it comes up (ufw, nftables, ...), with their
	// dependencies.
	Packages []string `json:"packages,omitempty"`
	// Files are written into the host's filesystem (absolute path to
	// content; root's, mode 0644) when it comes up: configuration of other
	// firewall managers (/etc/nftables.conf, /etc/firewalld/...), say.
	Files map[string]string `json:"files,omitempty"`
}

// For returns the options of host name: Host with Hosts[name] on top.
func (o Options) For(name string) HostOptions {
	h := o.Host
	h.Packages = slices.Clone(h.Packages)
	h.Files = maps.Clone(h.Files)
	one, ok := o.Hosts[name]
	if !ok {
		return h
	}
	h.NoRootLogin = h.NoRootLogin || one.NoRootLogin
	h.NoPersistent = h.NoPersistent || one.NoPersistent
	if one.Sudo != "" {
		h.Sudo = one.Sudo
	}
	if one.Password != "" {
		h.Password = one.Password
	}
	for _, p := range one.Packages {
		if !slices.Contains(h.Packages, p) {
			h.Packages = append(h.Packages, p)
		}
	}
	if len(one.Files) > 0 && h.Files == nil {
		h.Files = map[string]string{}
	}
	maps.Copy(h.Files, one.Files)
	return h
}

// sudo returns the host's sudo rights with the default filled in.
func (h HostOptions) sudo() Sudo {
	if h.Sudo == "" {
		return SudoNopasswd
	}
	return h.Sudo
}

// packageName is what Debian allows as a package name.
var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// Directories that the lab mounts over in every host: a file written there
// would never be seen.
var mountedDirs = []string{"/proc", "/sys", "/dev", "/run", "/tmp", Root}

// check lists what is wrong with the options of a host whose login user is
// user.
func (h HostOptions) check(user string) []error {
	var errs []error
	if h.NoRootLogin && (user == "" || user == "root") {
		errs = append(errs, errors.New("root login is off and the login user is root: nobody could log in (set a user in the inventory, or leave root login on)"))
	}
	if _, err := ParseSudo(string(h.Sudo)); err != nil {
		errs = append(errs, err)
	}
	if h.sudo() == SudoPassword && h.Password == "" {
		errs = append(errs, errors.New("sudo asks for a password and the login user has none: set one"))
	}
	if strings.ContainsAny(h.Password, ":\n") {
		errs = append(errs, errors.New("the password holds ':' or a newline, which chpasswd cannot take"))
	}
	for _, p := range h.Packages {
		if !packageName.MatchString(p) {
			errs = append(errs, fmt.Errorf("package %q: not a Debian package name", p))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(h.Files)) {
		switch {
		case !path.IsAbs(p) || path.Clean(p) != p || p == "/":
			errs = append(errs, fmt.Errorf("file %q: want an absolute, clean path to a file", p))
		case slices.ContainsFunc(mountedDirs, func(d string) bool { return p == d || strings.HasPrefix(p, d+"/") }):
			errs = append(errs, fmt.Errorf("file %q: the lab mounts over %s in every host; write it once the host is up", p, strings.Join(mountedDirs, ", ")))
		}
	}
	return errs
}
