package transport

import (
	"context"
	"fmt"
)

// Alive checks that the tunnel connection still carries: it sends a
// keepalive on it and waits for the answer, at most Options.Timeout (or
// ctx). A connection that leaves it unanswered is closed, as the
// keepalive that runs all along would close it a little later, and Alive
// returns an error wrapping ErrTunnelDown: what failed to reach a host
// through the tunnel then failed because of the way, not the host. A
// channel through a tunnel whose link was cut neither opens nor fails
// until its dial's deadline, which says nothing of which end is silent.
func (j *JumpDialer) Alive(ctx context.Context) error {
	// A caller that gave up already proves nothing, whatever the race
	// below: an answer quick enough could win the select otherwise.
	if err := ctx.Err(); err != nil {
		return err
	}
	tc, err := j.current()
	if err != nil {
		return err
	}
	wait, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	reply := make(chan error, 1)
	go func() {
		// Any answer, even "request not supported", proves the path.
		_, _, err := tc.client.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		if err == nil {
			return nil
		}
	case <-wait.Done():
		if ctx.Err() != nil {
			return ctx.Err() // the caller gave up: that proves nothing
		}
	case <-tc.done:
	}
	_ = tc.client.Close()
	return fmt.Errorf("tunnel %s: no answer within %s: %w", j.tunnel.Name, j.timeout, ErrTunnelDown)
}
