package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Listed is how nft took one document: Err is nil when it loaded, a
// *Rejected when nft refused it; Listing is what `nft list table` printed
// of the table the document made, once loaded.
type Listed struct {
	Err     error
	Listing string
}

// nftLoad loads a document from stdin, then lists the table it makes:
// $1 is nft, $2 the table ("inet fwpush").
const nftLoad = `"$1" -f /dev/stdin || exit; exec "$1" list table $2`

// TestNFT loads each nftables document (nft -f input) with this machine's
// nft, each alone in a throwaway network namespace, and lists table (as
// nft names it: "inet fwpush") once it is loaded. It returns one result
// per document. A non-nil error instead means this machine cannot test
// nftables documents at all, and says why: no nft, no permission to make
// the namespaces, or an nft that refuses even a table every server
// takes. Documents that differ in their comments only are loaded once.
func (t *Tester) TestNFT(ctx context.Context, table string, docs [][]byte) ([]Listed, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if !nftTableName.MatchString(table) {
		return nil, fmt.Errorf("table %q is not FAMILY NAME", table)
	}
	nft, err := t.lookPath("nft", "nftables")
	if err != nil {
		return nil, err
	}
	sh, err := t.lookPath("sh", "dash")
	if err != nil {
		return nil, err
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	load := func(ctx context.Context, doc []byte) (Listed, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, "-c", nftLoad, "sh", nft, table)
		cmd.Stdin = bytes.NewReader(doc)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.SysProcAttr = namespaced()
		cmd.WaitDelay = time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return Listed{Listing: stdout.String()}, nil
		case ctx.Err() != nil:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Listed{}, fmt.Errorf("nft did not finish within %s", timeout)
			}
			return Listed{}, ctx.Err()
		case errors.As(err, &exit) && exit.Exited():
			line, msg := parseNFTOutput(stderr.String())
			if msg == "" {
				msg = exit.String()
			}
			return Listed{Err: &Rejected{Program: "nft", Line: line, Msg: msg, exit: exit.ExitCode()}}, nil
		}
		return Listed{}, namespaceError(err)
	}

	// First a table every server takes: if this machine refuses it, its
	// refusals say nothing about the policies.
	probe, err := load(ctx, nftProbe)
	switch {
	case err != nil:
		return nil, err
	case probe.Err != nil:
		return nil, fmt.Errorf("nft here refuses a table every server takes (%v): it cannot tell good policies from bad", probe.Err)
	}

	uniq, of := distinctBy(docs, func(h io.Writer, d []byte) { uncommented(h, d) })
	results := make([]Listed, len(uniq))
	var g errgroup.Group
	g.SetLimit(cmpOr(t.Parallel, max(2, runtime.NumCPU())))
	for i, d := range uniq {
		g.Go(func() error {
			var err error
			results[i], err = load(ctx, d)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]Listed, len(docs))
	for i := range docs {
		out[i] = results[of[i]]
	}
	return out, nil
}

var (
	nftTableName = regexp.MustCompile(`^(ip|ip6|inet|arp|bridge|netdev) [A-Za-z][A-Za-z0-9_./-]*$`)
	// "/dev/stdin:7:3-9: Error: syntax error, unexpected ..." and
	// "/dev/stdin:7:3-30: Error: Could not process rule: No such file or directory"
	nftErrorRE = regexp.MustCompile(`^[^:]*:(\d+):[-\d]+: Error: (.*)$`)
)

// parseNFTOutput finds the line nft names first, and what it said: its
// errors, without the lines it quotes and underlines.
func parseNFTOutput(out string) (int, string) {
	line := 0
	var msgs []string
	for l := range strings.SplitSeq(out, "\n") {
		l = strings.TrimSpace(l)
		if m := nftErrorRE.FindStringSubmatch(l); m != nil {
			if line == 0 {
				line, _ = strconv.Atoi(m[1])
			}
			msgs = append(msgs, m[2])
			continue
		}
		if msg, ok := strings.CutPrefix(l, "Error: "); ok {
			msgs = append(msgs, msg)
		}
	}
	return line, strings.Join(msgs, "; ")
}

// nftProbe is a table of the kind every server takes, made of what
// fwpush's nftables backend writes.
var nftProbe = []byte(`table inet fwpush {}
delete table inet fwpush
table inet fwpush {
	set fwp-probe-4 {
		type ipv4_addr
		elements = {
			198.18.0.10,
		}
	}
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ip saddr 198.18.0.10 iifname "eth1" tcp dport 22 accept
		ct state established,related accept
		icmp type destination-unreachable accept
		icmpv6 type nd-neighbor-solicit accept
		iifname "eth1" ip saddr @fwp-probe-4 tcp dport { 80, 443 } accept
		meta nfproto ipv4 limit rate 1/second log prefix "fwpush DROP: "
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
`)
