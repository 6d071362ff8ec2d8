package runner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fwpush/fwpush/policy"
)

// Owning the filter table: fwpush only ever removes what it knows, and
// keeps only what the inventory preserves. The decisions here are made from
// the host's facts before anything on it changes.

// unknownChains lists the unknown chains of the splits (IPv4, IPv6), each
// once, in order.
func unknownChains(splits ...policy.Split) []string {
	var out []string
	for _, s := range splits {
		for _, c := range s.Unknown {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// mayOwn decides, before anything changes, whether the apply may remove
// the host's unknown chains: only with --force-own, and never one that a
// preserved chain still jumps to. Its refusal names the chains and the
// preserve line that would keep them.
func (p *pusher) mayOwn(splits ...policy.Split) error {
	unknown := unknownChains(splits...)
	if len(unknown) == 0 {
		return nil
	}
	var held []string
	for _, s := range splits {
		for _, c := range s.Held {
			if !slices.Contains(held, c) {
				held = append(held, c)
			}
		}
	}
	if len(held) > 0 {
		return fail("unknown chains", fmt.Errorf("%s: a preserved chain jumps there: removing %s would break that chain, even with --force-own; keep %s with %s",
			strings.Join(held, ", "), itThem(held), itThem(held), p.preserveLine(held)))
	}
	if p.opts.ForceOwn {
		p.log.Info("removing unknown chains (--force-own)", "chains", strings.Join(unknown, ","))
		return nil
	}
	return fail("unknown chains", fmt.Errorf("%s: the policy does not declare %s and no preserve pattern keeps %s, and fwpush removes nothing it does not know; keep %s with %s, or remove %s with --force-own",
		strings.Join(unknown, ", "), itThem(unknown), itThem(unknown), itThem(unknown), p.preserveLine(unknown), itThem(unknown)))
}

// preserveLine is the preserve line of the host's role that would keep
// chains too: the role's patterns, then the ones that keep chains.
func (p *pusher) preserveLine(chains []string) string {
	pats := []string{}
	if r, ok := p.inv.Role(p.host.Role); ok {
		pats = append(pats, r.Preserve...)
	}
	for _, s := range policy.SuggestPatterns(chains) {
		if !slices.Contains(pats, s) {
			pats = append(pats, s)
		}
	}
	quoted := make([]string, len(pats))
	for i, s := range pats {
		quoted[i] = strconv.Quote(s)
	}
	where := "[roles." + p.host.Role + "]"
	if p.inv.Path != "" {
		where += " of " + p.inv.Path
	}
	return "preserve = [" + strings.Join(quoted, ", ") + "] in " + where
}

func itThem(chains []string) string {
	if len(chains) == 1 {
		return "it"
	}
	return "them"
}
