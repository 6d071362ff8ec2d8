package remote

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fwpush/fwpush/live"
)

// The facts a host tells, as package live defines them (plain data that
// the decision, package change, reads without this package).
type (
	// Facts is what the facts script found on a host.
	Facts = live.Facts
	// Manager is another firewall manager found on a host.
	Manager = live.Manager
	// Lock is who holds a host's lock, as the host tells it.
	Lock = live.Lock
	// Guard is a run's apply whose fate is not decided yet.
	Guard = live.Guard
	// Conn is $SSH_CONNECTION: the client and server ends of our session.
	Conn = live.Conn
)

func parseFacts(out string) Facts {
	sections := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			sections[name] = body.String()
		}
		body.Reset()
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, markPrefix) && strings.HasSuffix(line, markSuffix) && line != markPrefix+"error"+markSuffix {
			flush()
			name = strings.TrimSuffix(strings.TrimPrefix(line, markPrefix), markSuffix)
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()

	f := Facts{
		Tools:      strings.Fields(sections["tools"]),
		Links:      strings.Fields(sections["links"]),
		Addrs:      map[netip.Addr]string{},
		V4:         sections["v4"],
		V6:         sections["v6"],
		Persisted4: sections["persisted4"],
		Persisted6: sections["persisted6"],
		Applied:    strings.TrimSpace(sections["applied"]),
		Persistent: strings.TrimSpace(sections["persistent"]) == "yes",
	}
	errMark := markPrefix + "error" + markSuffix
	for _, out := range []string{f.V4, f.V6} {
		if msg, failed := strings.CutSuffix(strings.TrimSpace(out), errMark); failed {
			f.SaveFailed = true
			if msg = strings.TrimSpace(msg); msg != "" && !strings.Contains(f.SaveError, msg) {
				f.SaveError = strings.TrimSpace(f.SaveError + "; " + msg)
				f.SaveError = strings.TrimPrefix(f.SaveError, "; ")
			}
		}
	}
	switch b := sections["backend"]; {
	case strings.Contains(b, "nf_tables"):
		f.Backend = "nf_tables"
	case strings.Contains(b, "legacy"):
		f.Backend = "legacy"
	}
	// "2: eth1    inet 198.18.0.21/24 brd ... scope global eth1"
	for line := range strings.SplitSeq(sections["addrs"], "\n") {
		fs := strings.Fields(line)
		if len(fs) < 4 || (fs[2] != "inet" && fs[2] != "inet6") {
			continue
		}
		if p, err := netip.ParsePrefix(fs[3]); err == nil {
			f.Addrs[p.Addr()] = strings.TrimSuffix(fs[1], ":")
		}
	}
	// "TOKEN EXPIRES", "WHO", "NOW"
	if l := strings.Split(strings.TrimRight(sections["lock"], "\n"), "\n"); len(l) == 3 {
		tok, exp, _ := strings.Cut(l[0], " ")
		f.Lock = &Lock{Token: tok, Expires: epoch(exp), Who: l[1], Now: epoch(l[2])}
	}
	// "TOKEN STATUS STARTED FIRE_AT NOW"
	for line := range strings.SplitSeq(sections["guards"], "\n") {
		if g := strings.Fields(line); len(g) == 5 {
			status := g[1]
			if status == "none" {
				status = ""
			}
			f.Guards = append(f.Guards, Guard{Token: g[0], Status: status, Started: epoch(g[2]), FireAt: epoch(g[3]), Now: epoch(g[4])})
		}
	}
	for _, o := range []struct {
		section string
		doc     *string
	}{{"other4", &f.Other4}, {"other6", &f.Other6}} {
		tool, saved, _ := strings.Cut(sections[o.section], "\n")
		switch tool {
		case "iptables-legacy-save", "ip6tables-legacy-save":
			f.OtherBackend, *o.doc = "legacy", saved
		case "iptables-nft-save", "ip6tables-nft-save":
			f.OtherBackend, *o.doc = "nf_tables", saved
		}
	}
	f.Managers = parseManagers(sections["managers"])
	f.NFT = parseNFT(sections)
	f.IPSet = strings.TrimSpace(sections["ipset"]) == "yes"
	f.PersistedSets = sections["persistedsets"]
	f.PersistentSets = strings.TrimSpace(sections["persistentsets"]) == "yes"
	f.Sets = sections["sets"]
	if msg, failed := strings.CutSuffix(strings.TrimSpace(f.Sets), errMark); failed {
		f.Sets, f.SetsFailed = "", true
		// ipset says what went wrong on its last line, after what it
		// saved before.
		lines := strings.Split(strings.TrimSpace(msg), "\n")
		f.SetsError = strings.TrimSpace(lines[len(lines)-1])
	}
	// "198.18.0.10 51234 198.18.0.21 22"
	if c := strings.Fields(sections["conn"]); len(c) == 4 {
		client, err1 := netip.ParseAddr(c[0])
		server, err2 := netip.ParseAddr(c[2])
		port, err3 := strconv.Atoi(c[3])
		if err1 == nil && err2 == nil && err3 == nil {
			f.Conn = Conn{Client: client.Unmap(), Server: server.Unmap(), Port: port}
		}
	}
	return f
}

// parseManagers reads the managers section: "ufw conf", "NAME enabled
// PATH", and "units NAME..." followed by systemctl is-active's answer for
// each, in order. A manager is told once, by what gave it away first.
func parseManagers(sec string) []Manager {
	var out []Manager
	add := func(name, how string) {
		if !slices.ContainsFunc(out, func(m Manager) bool { return m.Name == name }) {
			out = append(out, Manager{Name: name, How: how})
		}
	}
	var units []string
	for line := range strings.SplitSeq(sec, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case len(f) == 2 && f[0] == "ufw" && f[1] == "conf":
			add("ufw", "ENABLED=yes in /etc/ufw/ufw.conf")
		case len(f) == 3 && f[1] == "enabled":
			add(f[0], "enabled ("+f[2]+")")
		case f[0] == "units":
			units = f[1:]
		case len(units) > 0:
			// systemctl is-active: active, reloading, activating, inactive, failed, ...
			switch f[0] {
			case "active", "reloading", "activating", "refreshing":
				add(units[0], "active")
			}
			units = units[1:]
		}
	}
	return out
}

// epoch reads seconds since 1970; the zero time when it cannot.
func epoch(s string) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}
