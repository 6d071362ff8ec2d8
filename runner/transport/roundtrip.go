package transport

import (
	"net"
	"sync/atomic"
)

// RoundTripConn is a connection that counts its round trips as the side
// using it lives them: each time it reads bytes after having written some
// since it last read any, it has waited for an answer once. Requests
// written one after the other without waiting count once; so does an
// answer that arrives in several reads. Bytes the peer sends unasked
// (a keepalive's) cost nothing until the next write. On a connection that
// carries several conversations at once (SSH channels), overlapping
// exchanges count once: the count is exact for one conversation.
//
// fwpush logs the count with -vv; tests hold budgets of round trips with
// it (Options.WrapConn).
type RoundTripConn struct {
	net.Conn
	wrote atomic.Bool
	n     atomic.Int64
}

// CountRoundTrips wraps c to count its round trips.
func CountRoundTrips(c net.Conn) *RoundTripConn { return &RoundTripConn{Conn: c} }

// Write writes p; a read after it ends a round trip.
func (c *RoundTripConn) Write(p []byte) (int, error) {
	// Marked before the bytes leave: the answer may be read before
	// Write returns.
	if len(p) > 0 {
		c.wrote.Store(true)
	}
	return c.Conn.Write(p)
}

// Read reads into p, counting a round trip when it is the first read
// with bytes since a write.
func (c *RoundTripConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.wrote.Swap(false) {
		c.n.Add(1)
	}
	return n, err
}

// RoundTrips is the count so far.
func (c *RoundTripConn) RoundTrips() int64 { return c.n.Load() }
