package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/policy"
)

// translated lists, for messages, what the translator takes.
const translated = "-s, -d, -i, -o, -p tcp|udp|sctp|icmp|ipv6-icmp, -m tcp|udp|sctp|multiport|icmp|icmp6|conntrack|state|set|limit|comment, -j ACCEPT|DROP|REJECT|RETURN|LOG|CHAIN, -g CHAIN"

// protocols are the protocols -p takes, by every name iptables gives
// them, as nft names them.
var protocols = map[string]string{
	"tcp": "tcp", "6": "tcp",
	"udp": "udp", "17": "udp",
	"sctp": "sctp", "132": "sctp",
	"icmp": "icmp", "1": "icmp",
	"ipv6-icmp": "ipv6-icmp", "icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp", "58": "ipv6-icmp",
}

// ctStates are conntrack's states in the order nft lists them (by their
// bits), and their iptables names.
var ctStates = []struct{ iptables, nft string }{
	{"INVALID", "invalid"}, {"ESTABLISHED", "established"}, {"RELATED", "related"}, {"NEW", "new"}, {"UNTRACKED", "untracked"},
}

// limitUnits are the units of -m limit's rate, as nft names them.
var limitUnits = map[string]string{
	"s": "second", "sec": "second", "second": "second",
	"m": "minute", "min": "minute", "minute": "minute",
	"h": "hour", "hour": "hour",
	"d": "day", "day": "day",
}

// logLevels are LOG's levels, by number and iptables' names, as nft
// names them; warn, the default of both, nft does not list.
var logLevels = map[string]string{
	"0": "emerg", "emerg": "emerg", "panic": "emerg",
	"1": "alert", "alert": "alert",
	"2": "crit", "crit": "crit",
	"3": "err", "err": "err", "error": "err",
	"4": "warn", "warn": "warn", "warning": "warn",
	"5": "notice", "notice": "notice",
	"6": "info", "info": "info",
	"7": "debug", "debug": "debug",
}

// rejects are REJECT's --reject-with values of each family, as nft
// writes them; "" is the default, ICMP's port unreachable.
var rejects = map[int]map[string]string{
	4: {
		"icmp-port-unreachable": "", "icmp-net-unreachable": "reject with icmp net-unreachable",
		"icmp-host-unreachable": "reject with icmp host-unreachable", "icmp-proto-unreachable": "reject with icmp prot-unreachable",
		"icmp-net-prohibited": "reject with icmp net-prohibited", "icmp-host-prohibited": "reject with icmp host-prohibited",
		"icmp-admin-prohibited": "reject with icmp admin-prohibited", "tcp-reset": "reject with tcp reset",
	},
	6: {
		"icmp6-port-unreachable": "", "icmp6-no-route": "reject with icmpv6 no-route",
		"icmp6-adm-prohibited": "reject with icmpv6 admin-prohibited", "icmp6-addr-unreachable": "reject with icmpv6 addr-unreachable",
		"tcp-reset": "reject with tcp reset",
	},
}

// negatable are the options a ! may come before.
var negatable = map[string]bool{
	"-s": true, "--source": true, "-d": true, "--destination": true,
	"-i": true, "--in-interface": true, "-o": true, "--out-interface": true,
	"-p": true, "--protocol": true,
	"--dport": true, "--destination-port": true, "--sport": true, "--source-port": true,
	"--dports": true, "--destination-ports": true, "--sports": true, "--source-ports": true,
	"--icmp-type": true, "--icmpv6-type": true, "--ctstate": true, "--state": true, "--match-set": true,
}

// rule translates one rule of a document of family.
func (t *translator) rule(family int, r policy.Rule, doc *policy.Ruleset) (xrule, string) {
	toks, err := policy.Fields(r.Text)
	if err != nil {
		return xrule{}, err.Error()
	}
	toks = toks[2:] // -A CHAIN
	x := xrule{line: r.Line}
	// -p and -m limit become matches where they are; what they are is
	// known once the options that follow them are read.
	protoAt, limitAt := -1, -1
	proto, protoNeg, protoImplied := "", false, false
	rate, burst := "", ""
	neg := false
	i := 0
	value := func() (string, string) {
		if i+1 >= len(toks) {
			return "", toks[i] + " needs a value"
		}
		i++
		return toks[i], ""
	}
	op := func() string {
		if neg {
			return "!= "
		}
		return ""
	}
	// transport checks that a port or ICMP match follows a -p that names
	// its protocol, and makes that -p implied by it.
	transport := func(opt string, want ...string) string {
		if !slices.Contains(want, proto) || protoNeg {
			return fmt.Sprintf("%s needs -p %s before it", opt, strings.Join(want, " or -p "))
		}
		protoImplied = true
		return ""
	}
	for ; i < len(toks); i++ {
		tok := toks[i]
		if tok == "!" {
			neg = true
			continue
		}
		switch tok {
		case "-s", "--source", "-d", "--destination":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			p, msg := prefix(v, family)
			if msg != "" {
				return x, tok + " " + v + ": " + msg
			}
			if p.Bits() == 0 && !neg {
				break // every address: no match at all, as iptables-save writes it
			}
			dir := "saddr"
			if tok == "-d" || tok == "--destination" {
				dir = "daddr"
			}
			x.matches = append(x.matches, ipKeyword(family)+" "+dir+" "+op()+addrText(p))
			x.family = true
		case "-i", "--in-interface", "-o", "--out-interface":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			name, ok := iface(v)
			if !ok {
				return x, fmt.Sprintf("%s %s: an interface name of letters, digits and '.', '_', '-', '@', ':', with a '+' at the end for a prefix", tok, v)
			}
			kw := "iifname"
			if tok == "-o" || tok == "--out-interface" {
				kw = "oifname"
			}
			x.matches = append(x.matches, kw+" "+op()+quoteString(name))
		case "-p", "--protocol":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			if v == "all" || v == "0" {
				if neg {
					return x, "! -p all matches nothing"
				}
				break
			}
			name, ok := protocols[strings.ToLower(v)]
			if !ok {
				return x, fmt.Sprintf("-p %s: it translates the protocols tcp, udp, sctp, icmp and ipv6-icmp", v)
			}
			proto, protoNeg, protoAt = name, neg, len(x.matches)
			x.matches = append(x.matches, "") // written once the rule is read
		case "-m", "--match":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			switch v {
			case "tcp", "udp", "sctp", "multiport", "icmp", "icmp6", "conntrack", "state", "set", "comment":
			case "limit":
				limitAt = len(x.matches)
				x.matches = append(x.matches, "")
			default:
				return x, fmt.Sprintf("match -m %s is not one it translates (it translates %s)", v, translated)
			}
		case "--dport", "--destination-port", "--sport", "--source-port",
			"--dports", "--destination-ports", "--sports", "--source-ports":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			if msg := transport(tok, "tcp", "udp", "sctp"); msg != "" {
				return x, msg
			}
			ports, msg := portList(v)
			if msg != "" {
				return x, tok + " " + v + ": " + msg
			}
			dir := "dport"
			if strings.HasPrefix(tok, "--s") {
				dir = "sport"
			}
			x.matches = append(x.matches, proto+" "+dir+" "+op()+ports)
		case "--ports":
			return x, "--ports (a source or a destination port): it translates --dports and --sports"
		case "--icmp-type", "--icmpv6-type":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			kw, want := "icmp", "icmp"
			if tok == "--icmpv6-type" {
				kw, want = "icmpv6", "ipv6-icmp"
			}
			if msg := transport(tok, want); msg != "" {
				return x, msg
			}
			m, msg := icmpMatch(kw, v, neg)
			if msg != "" {
				return x, tok + " " + v + ": " + msg
			}
			if m != "" {
				x.matches = append(x.matches, m)
				x.family = true
			}
		case "--ctstate", "--state":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			m, msg := ctState(v, neg)
			if msg != "" {
				return x, tok + " " + v + ": " + msg
			}
			x.matches = append(x.matches, m)
		case "--match-set":
			if i+2 >= len(toks) {
				return x, "--match-set needs a set and src or dst"
			}
			name, flags := toks[i+1], toks[i+2]
			i += 2
			s, ok := t.sets[name]
			if !ok {
				return x, fmt.Sprintf("set %s is not one of the policy's", name)
			}
			if flags != "src" && flags != "dst" {
				return x, fmt.Sprintf("--match-set %s %s: it translates sets of one address, src or dst", name, flags)
			}
			sf := 4
			if s.Family == policy.Inet6 {
				sf = 6
			}
			dir := "saddr"
			if flags == "dst" {
				dir = "daddr"
			}
			x.matches = append(x.matches, ipKeyword(sf)+" "+dir+" "+op()+"@"+SetName(name))
			x.family = true
			x.sets = append(x.sets, name)
		case "--comment":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			if !safeString(v) || len(v) > 128 {
				return x, fmt.Sprintf("--comment %q: nft takes comments of at most 128 characters without quotes or backslashes", v)
			}
			x.comment = v
		case "--limit":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			if rate, msg = limitRate(v); msg != "" {
				return x, "--limit " + v + ": " + msg
			}
		case "--limit-burst":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return x, "--limit-burst " + v + ": not a number of packets"
			}
			burst = v
		case "-j", "--jump", "-g", "--goto":
			v, msg := value()
			if msg != "" {
				return x, msg
			}
			if msg := t.target(family, &x, tok, v, toks[i+1:], doc); msg != "" {
				return x, msg
			}
			i = len(toks)
		default:
			return x, fmt.Sprintf("%s is not one it translates (it translates %s)", tok, translated)
		}
		if neg && !negatable[tok] {
			return x, "! before " + tok + ", which iptables does not negate"
		}
		neg = false
	}
	if neg {
		return x, "a ! with nothing after it"
	}
	if limitAt >= 0 {
		if rate == "" {
			rate = "3/hour" // iptables' default
		}
		m := "limit rate " + rate
		if burst != "" && burst != "5" {
			m += " burst " + burst + " packets"
		}
		x.matches[limitAt] = m
	} else if rate != "" || burst != "" {
		return x, "--limit without -m limit"
	}
	if protoAt >= 0 {
		switch {
		case protoImplied:
			// "tcp dport 22" matches TCP only: nft lists no "meta
			// l4proto tcp" before it.
			x.matches = slices.Delete(x.matches, protoAt, protoAt+1)
		case protoNeg:
			x.matches[protoAt] = "meta l4proto != " + proto
		default:
			x.matches[protoAt] = "meta l4proto " + proto
			// nft takes ICMP for IPv4's, and ICMPv6 for IPv6's, and
			// lists no "meta nfproto" before them.
			x.hides = x.hides || proto == "icmp" && family == 4 || proto == "ipv6-icmp" && family == 6
		}
	}
	x.matches = slices.DeleteFunc(x.matches, func(m string) bool { return m == "" })
	return x, ""
}

// target translates -j or -g and what follows it.
func (t *translator) target(family int, x *xrule, opt, target string, args []string, doc *policy.Ruleset) string {
	if opt == "-g" || opt == "--goto" {
		if _, ok := doc.Chains[target]; !ok || hooks[target] != "" {
			return fmt.Sprintf("-g %s: no such chain", target)
		}
		if len(args) > 0 {
			return fmt.Sprintf("-g %s %s: nothing follows a goto", target, strings.Join(args, " "))
		}
		x.verdict = "goto " + chainName(target)
		return ""
	}
	noArgs := func() string {
		if len(args) > 0 {
			return fmt.Sprintf("-j %s %s: it does not translate these options", target, strings.Join(args, " "))
		}
		return ""
	}
	switch target {
	case "ACCEPT", "DROP", "RETURN":
		x.verdict = strings.ToLower(target)
		return noArgs()
	case "REJECT":
		x.reject = true
		for k := 0; k < len(args); k += 2 {
			if args[k] != "--reject-with" || k+1 >= len(args) {
				return fmt.Sprintf("-j REJECT %s: it translates --reject-with only", strings.Join(args[k:], " "))
			}
			with, ok := rejects[family][args[k+1]]
			if !ok {
				return fmt.Sprintf("-j REJECT --reject-with %s: not a reply of IPv%d it translates", args[k+1], family)
			}
			if with != "" {
				x.reject, x.verdict = false, with
				// nft lists a reject that depends on the family without
				// the "meta nfproto" it needs; one with ICMP's own
				// replies needs none.
				x.family = x.family || strings.Contains(with, "icmp")
				x.hides = true
			}
		}
		return ""
	case "LOG":
		prefix, level := "", ""
		for k := 0; k < len(args); k += 2 {
			if k+1 >= len(args) {
				return fmt.Sprintf("-j LOG %s needs a value", args[k])
			}
			switch v := args[k+1]; args[k] {
			case "--log-prefix":
				if !safeString(v) {
					return fmt.Sprintf("--log-prefix %q: nft takes prefixes without quotes or backslashes", v)
				}
				prefix = v
			case "--log-level":
				l, ok := logLevels[strings.ToLower(v)]
				if !ok {
					return fmt.Sprintf("--log-level %s: not a level of syslog", v)
				}
				level = l
			default:
				return fmt.Sprintf("-j LOG %s: it translates --log-prefix and --log-level", args[k])
			}
		}
		v := "log"
		if prefix != "" {
			v += " prefix " + quoteString(prefix)
		}
		if level != "" && level != "warn" {
			v += " level " + level
		}
		x.verdict = v
		return ""
	}
	if _, ok := doc.Chains[target]; ok && hooks[target] == "" {
		x.verdict = "jump " + chainName(target)
		return noArgs()
	}
	return fmt.Sprintf("target -j %s: it translates ACCEPT, DROP, REJECT, RETURN, LOG and jumps to the policy's chains", target)
}

// ipKeyword is nft's word for the header of a family.
func ipKeyword(family int) string {
	if family == 6 {
		return "ip6"
	}
	return "ip"
}

// prefix reads an address or network of family.
func prefix(s string, family int) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, "not an address or network"
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4() != (family == 4) || p.Addr().Zone() != "" {
		return p, fmt.Sprintf("not an IPv%d address", family)
	}
	return p.Masked(), ""
}

// iface reads an interface name, a trailing '+' (any name that begins so)
// made nft's '*'.
func iface(s string) (string, bool) {
	base, wild := strings.CutSuffix(s, "+")
	if base == "" && !wild || len(s) > 15 {
		return "", false
	}
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@:", c)) {
			return "", false
		}
	}
	if wild {
		return base + "*", true
	}
	return base, true
}

// portList reads "22", "1000:2000" or multiport's "80,443,1000:2000" as
// nft lists them: one port or range, or a set of them in order.
func portList(s string) (string, string) {
	type span struct{ lo, hi int }
	var spans []span
	for p := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(p, ":")
		var sp span
		var err error
		switch {
		case !isRange:
			sp.lo, err = strconv.Atoi(lo)
			sp.hi = sp.lo
		default:
			sp.lo, sp.hi = 0, 65535
			if lo != "" {
				sp.lo, err = strconv.Atoi(lo)
			}
			if err == nil && hi != "" {
				sp.hi, err = strconv.Atoi(hi)
			}
		}
		if err != nil || sp.lo < 0 || sp.hi > 65535 || sp.lo > sp.hi {
			return "", fmt.Sprintf("bad port %q", p)
		}
		spans = append(spans, sp)
	}
	// nft merges the ports of a set that overlap or touch into ranges,
	// and lists them in order.
	slices.SortFunc(spans, func(a, b span) int { return a.lo*65536 + a.hi - (b.lo*65536 + b.hi) })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp.lo <= last.hi+1 {
			last.hi = max(last.hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	words := make([]string, len(merged))
	for i, sp := range merged {
		words[i] = strconv.Itoa(sp.lo)
		if sp.hi != sp.lo {
			words[i] += "-" + strconv.Itoa(sp.hi)
		}
	}
	if len(words) == 1 {
		return words[0], ""
	}
	return "{ " + strings.Join(words, ", ") + " }", ""
}

// ctState reads --ctstate's states.
func ctState(s string, neg bool) (string, string) {
	var have []string
	for st := range strings.SplitSeq(s, ",") {
		if !slices.ContainsFunc(ctStates, func(c struct{ iptables, nft string }) bool { return c.iptables == st }) {
			return "", fmt.Sprintf("state %q: it translates INVALID, ESTABLISHED, RELATED, NEW and UNTRACKED", st)
		}
		have = append(have, st)
	}
	var names []string
	for _, c := range ctStates {
		if slices.Contains(have, c.iptables) {
			names = append(names, c.nft)
		}
	}
	if neg {
		// nft lists a negated mask with its bits joined by '|'.
		return "ct state != " + strings.Join(names, " | "), ""
	}
	return "ct state " + strings.Join(names, ","), ""
}

// limitRate reads -m limit's --limit ("1/sec") as nft's "1/second".
func limitRate(s string) (string, string) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		unit = "second" // iptables' default unit
	}
	v, err := strconv.Atoi(n)
	u, known := limitUnits[unit]
	if err != nil || v < 1 || !known {
		return "", "a rate such as 1/sec, 10/minute, 3/hour or 1/day"
	}
	return strconv.Itoa(v) + "/" + u, ""
}
