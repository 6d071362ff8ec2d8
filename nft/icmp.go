package nft

import (
	"fmt"
	"strconv"
	"strings"
)

// The ICMP and ICMPv6 types and codes nft lists by name (nft's own
// tables); the others it lists as numbers.
var (
	icmpTypes = map[int]string{
		0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect",
		8: "echo-request", 9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded",
		12: "parameter-problem", 13: "timestamp-request", 14: "timestamp-reply", 15: "info-request",
		16: "info-reply", 17: "address-mask-request", 18: "address-mask-reply",
	}
	icmpCodes = map[int]string{
		0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable",
		4: "frag-needed", 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited",
	}
	icmpv6Types = map[int]string{
		1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
		128: "echo-request", 129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report",
		132: "mld-listener-done", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit",
		136: "nd-neighbor-advert", 137: "nd-redirect", 138: "router-renumbering", 141: "ind-neighbor-solicit",
		142: "ind-neighbor-advert", 143: "mld2-listener-report",
	}
	icmpv6Codes = map[int]string{
		0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable", 4: "port-unreachable",
		5: "policy-fail", 6: "reject-route",
	}
)

// The names iptables gives ICMP and ICMPv6 types (and some of their
// codes), as "TYPE" or "TYPE/CODE".
var (
	iptablesICMP = map[string]string{
		"echo-reply": "0", "pong": "0", "destination-unreachable": "3", "network-unreachable": "3/0",
		"host-unreachable": "3/1", "protocol-unreachable": "3/2", "port-unreachable": "3/3",
		"fragmentation-needed": "3/4", "network-prohibited": "3/9", "host-prohibited": "3/10",
		"communication-prohibited": "3/13", "source-quench": "4", "redirect": "5", "echo-request": "8",
		"ping": "8", "router-advertisement": "9", "router-solicitation": "10", "time-exceeded": "11",
		"ttl-exceeded": "11", "parameter-problem": "12", "timestamp-request": "13", "timestamp-reply": "14",
		"address-mask-request": "17", "address-mask-reply": "18",
	}
	iptablesICMPv6 = map[string]string{
		"destination-unreachable": "1", "no-route": "1/0", "communication-prohibited": "1/1",
		"address-unreachable": "1/3", "port-unreachable": "1/4", "packet-too-big": "2",
		"time-exceeded": "3", "ttl-exceeded": "3", "parameter-problem": "4", "echo-request": "128",
		"ping": "128", "echo-reply": "129", "pong": "129", "router-solicitation": "133",
		"router-advertisement": "134", "neighbour-solicitation": "135", "neighbor-solicitation": "135",
		"neighbour-advertisement": "136", "neighbor-advertisement": "136", "redirect": "137",
	}
)

// icmpMatch translates --icmp-type (kw "icmp") or --icmpv6-type (kw
// "icmpv6") V: "8", "3/1", or a name iptables gives; "any" is no match.
func icmpMatch(kw, v string, neg bool) (string, string) {
	names, types, codes := iptablesICMP, icmpTypes, icmpCodes
	if kw == "icmpv6" {
		names, types, codes = iptablesICMPv6, icmpv6Types, icmpv6Codes
	}
	if v == "any" {
		if neg {
			return "", "! any matches nothing"
		}
		return "", ""
	}
	if n, ok := names[strings.ToLower(v)]; ok {
		v = n
	}
	ts, cs, hasCode := strings.Cut(v, "/")
	typ, err := strconv.Atoi(ts)
	if err != nil || typ < 0 || typ > 255 {
		return "", "not a type (a number, TYPE/CODE, or a name iptables gives one)"
	}
	m := kw + " type " + opText(neg) + numName(typ, types)
	if !hasCode {
		return m, ""
	}
	code, err := strconv.Atoi(cs)
	if err != nil || code < 0 || code > 255 {
		return "", "not a code"
	}
	if neg {
		// iptables negates the type and code together; nft would
		// negate each.
		return "", fmt.Sprintf("! %s/%d: it translates a negated type without a code only", ts, code)
	}
	return m + " " + kw + " code " + numName(code, codes), ""
}

func opText(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

// numName is n's name in names, else n.
func numName(n int, names map[int]string) string {
	if s, ok := names[n]; ok {
		return s
	}
	return strconv.Itoa(n)
}
