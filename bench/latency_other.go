//go:build !linux

package bench

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/fwpush/fwpush/bench/relay"
)

// slowLink needs Linux: network namespaces, iptables and socket marks.
type slowLink struct{}

func startSlowLink(context.Context, string, netip.AddrPort, time.Duration) (*slowLink, error) {
	return nil, errors.New("slow link: the relay needs Linux")
}

func (*slowLink) stats() relay.Stats          { return relay.Stats{} }
func (*slowLink) close(context.Context) error { return nil }
