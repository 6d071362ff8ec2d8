package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// SnapshotOptions shape a snapshot.
type SnapshotOptions struct {
	// Comment is written at the top, each line as a TOML comment: where
	// the hosts came from, and when.
	Comment []string
	// From is the directory of the inventory, To that of the snapshot,
	// both absolute: user template paths, relative to the inventory, are
	// written relative to the snapshot. With either empty they are
	// written as they are.
	From, To string
}

// Snapshot writes the inventory as a static one: every host written out
// with where it came from (source), and no [digitalocean] table, so that
// a command given the snapshot sees exactly this fleet without asking any
// source again. Parsing the snapshot gives the same inventory, and the
// same Digest.
func Snapshot(inv *Inventory, opts SnapshotOptions) ([]byte, error) {
	s := inv.SSH
	doc := rawFile{
		SSH: rawSSH{Parallel: s.Parallel, Timeout: shortDuration(s.Timeout),
			RollbackAfter: shortDuration(s.RollbackAfter), Become: s.Become},
		Interfaces: rawInterfaces{Public: inv.Interfaces.Public, Private: inv.Interfaces.Private},
		Firewall:   rawFirewall{Preserve: inv.Firewall.Preserve, Backend: inv.Firewall.Backend},
		Roles:      map[string]rawRole{},
		Hosts:      map[string]rawHost{},
	}
	if s.Given.User {
		doc.SSH.User = s.User
	}
	if s.Given.Port {
		doc.SSH.Port = s.Port
	}
	if s.Given.Identity {
		doc.SSH.Identity = s.Identity
	}
	if s.Given.KnownHosts {
		doc.SSH.KnownHosts = s.KnownHosts
	}
	switch {
	case inv.HasSites():
		doc.Sites = map[string]rawSite{}
		for _, site := range inv.Sites {
			doc.Sites[site.Name] = rawSite{Tunnel: site.Tunnels}
		}
	case len(s.Tunnels) == 1:
		doc.SSH.Tunnel = s.Tunnels[0]
	case len(s.Tunnels) > 1:
		doc.SSH.Tunnel = s.Tunnels
	}
	for _, r := range inv.Roles {
		sr := rawRole{Template: r.Template, PublicTCP: r.PublicTCP, LogDropped: r.LogDropped, Preserve: r.Preserve, Backend: r.Backend}
		if !IsBuiltin(r.Template) {
			sr.Template = relocate(r.Template, opts.From, opts.To)
		}
		for _, a := range r.Allow {
			sa := rawAllow{From: a.From}
			if !a.AllTCP {
				sa.TCP, sa.UDP = a.TCP, a.UDP
			}
			if a.CrossSiteOK {
				sa.CrossSite = "ok"
			}
			sr.Allow = append(sr.Allow, sa)
		}
		doc.Roles[r.Name] = sr
	}
	for _, h := range inv.Hosts {
		sh := rawHost{Role: h.Role, Site: h.Site, Source: h.Source, Backend: h.GivenBackend,
			PublicIP: addrText(h.PublicIP), PrivateIP: addrText(h.PrivateIP), PublicIP6: addrText(h.PublicIP6)}
		if h.PublicIface != inv.Interfaces.Public {
			sh.PublicIface = h.PublicIface
		}
		if h.PrivateIface != inv.Interfaces.Private {
			sh.PrivateIface = h.PrivateIface
		}
		if h.User != s.User || h.Given.User && !s.Given.User {
			sh.User = h.User
		}
		if h.Port != s.Port || h.Given.Port && !s.Given.Port {
			sh.Port = h.Port
		}
		if h.Given.Become && h.Become != s.Become {
			sh.Become = h.Become
		}
		doc.Hosts[h.Name] = sh
	}
	var b bytes.Buffer
	for _, c := range opts.Comment {
		for line := range strings.SplitSeq(c, "\n") {
			fmt.Fprintf(&b, "# %s\n", line)
		}
	}
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	var body bytes.Buffer
	enc := toml.NewEncoder(&body)
	enc.Indent = ""
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", inv.Path, err)
	}
	// A blank line before each table, as people write them; the tables
	// that only hold others go without a header of their own.
	prev := ""
	for line := range strings.Lines(body.String()) {
		switch strings.TrimSpace(line) {
		case "[roles]", "[hosts]", "[sites]", "":
			continue
		}
		if strings.HasPrefix(line, "[") && prev != "" {
			b.WriteByte('\n')
		}
		b.WriteString(line)
		prev = line
	}
	return b.Bytes(), nil
}

// relocate rewrites a template path relative to the directory from as one
// relative to the directory to.
func relocate(template, from, to string) string {
	if filepath.IsAbs(template) || from == "" || to == "" {
		return template
	}
	rel, err := filepath.Rel(to, filepath.Join(from, template))
	if err != nil {
		return filepath.Join(from, template)
	}
	return rel
}

// Digest identifies the fleet: every site with its bastions and every host
// with its role, site, addresses, interfaces and login, as
// "sha256:HEX". An inventory and its snapshot have the same digest;
// a host that joins, leaves or changes address changes it. Roles are not
// part of it: what they allow is in the policies themselves.
func (inv *Inventory) Digest() string {
	h := sha256.New()
	for _, s := range inv.Sites {
		fmt.Fprintf(h, "site %q %q\n", s.Name, s.Tunnels)
	}
	for _, x := range inv.Hosts {
		fmt.Fprintf(h, "host %q %q %q %s %s %s %q %q %q %d %q\n", x.Name, x.Role, x.Site,
			addrText(x.PublicIP), addrText(x.PrivateIP), addrText(x.PublicIP6),
			x.PublicIface, x.PrivateIface, x.User, x.Port, x.Become)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
