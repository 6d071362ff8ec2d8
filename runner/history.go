package runner

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/inventory"
)

// historian is a Host that reads the host's history: remote.Host is one.
type historian interface {
	History(ctx context.Context) ([]byte, error)
}

// HistoryResult is one host's history, as fwpush history reads it.
type HistoryResult struct {
	Host string
	// Entries are the host's lines, history.1's then history's; Bad
	// counts the lines that could not be read (cut short, say).
	Entries []history.Entry
	Bad     int
	// Status is Unchanged when the host was read (a read changes
	// nothing), else why not: Unreachable, Failed or NotTried, with Err,
	// a *HostError.
	Status Status
	Err    error
}

// ReadHistory reads the history of each of hosts over fleet, parallel at
// a time (the inventory's when 0): one round trip per host, which changes
// nothing. A host that cannot be read fails alone.
func ReadHistory(ctx context.Context, inv *inventory.Inventory, hosts []*inventory.Host, fleet Fleet, parallel int, logger *slog.Logger) []HistoryResult {
	if parallel <= 0 {
		parallel = inv.SSH.Parallel
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	out := make([]HistoryResult, len(hosts))
	var g errgroup.Group
	g.SetLimit(max(parallel, 1))
	for i, h := range hosts {
		g.Go(func() error {
			out[i] = readHistory(ctx, h, fleet, logger.With("host", h.Name))
			return nil // each host's error is in its result
		})
	}
	_ = g.Wait()
	return out
}

func readHistory(ctx context.Context, h *inventory.Host, fleet Fleet, log *slog.Logger) HistoryResult {
	res := HistoryResult{Host: h.Name, Status: Unchanged}
	failed := func(err error) HistoryResult {
		res.fail(err)
		log.Warn("host failed", "status", res.Status, "err", err)
		return res
	}
	conn, err := fleet.Open(ctx, h)
	if err != nil {
		return failed(connectError(err))
	}
	defer conn.Close()
	hr, ok := conn.(historian)
	if !ok {
		return failed(fail("read history", errors.New("this connection cannot read a history")))
	}
	data, err := hr.History(ctx)
	if err != nil {
		return failed(stepFail("read history", err))
	}
	res.Entries, res.Bad = history.Parse(h.Name, data)
	return res
}

// fail records a failure to read a host's history, as HostResult.fail.
func (r *HistoryResult) fail(err error) {
	hr := HostResult{Host: r.Host}
	hr.fail(err)
	r.Status, r.Err = hr.Status, hr.Err
}
