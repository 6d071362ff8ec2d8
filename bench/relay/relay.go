// Package relay is the bench's stand-in for a slow link: a TCP relay that
// holds every byte a set time in each direction before passing it on, in
// order. fwbench puts it between the lab's controller and its tunnel host
// (whose kernel may have no netem) to measure every tool at a round-trip
// time an operator's laptop has to its data centre.
//
// What it models and what it does not:
//
//   - Each direction is a queue: a chunk read from one side is stamped with
//     the time it was read and written to the other side once Delay has
//     passed, chunks in the order they were read. A byte is held at least
//     Delay; more when the machine is slow to wake the writer.
//   - Chunks are what one read returned: bytes that arrived together (or
//     while the relay was busy) travel together, as segments coalesced by a
//     real link would. Chunks read apart are written apart, each as soon as
//     it is due, with TCP_NODELAY on both sides.
//   - The end of a direction (EOF) is held Delay too, then passed on as a
//     half-close; a reset (or any other read error) closes both sides once
//     what was read before it has been delivered.
//   - The client's TCP handshake ends at the relay, at once. To pay for the
//     round trip a real handshake costs, the upstream connection is opened
//     1.5 round trips after the client's (3 × Delay): the server then
//     accepts, and its first byte reaches the client, when they would over
//     a real link (2 round trips after connect), and the client's first
//     bytes reach the server 1.5 round trips after it sent them.
//   - Bandwidth is not limited, nothing is lost or reordered, and there is
//     no jitter beyond the machine's own scheduling.
package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Relay forwards each connection it accepts to a new upstream connection
// opened by Dial, holding bytes Delay in each direction. Set its fields
// before Serve; it is safe for concurrent use afterwards.
type Relay struct {
	// Delay is the one-way delay: half the round-trip time it adds.
	Delay time.Duration
	// Dial opens the upstream connection for each accepted one.
	Dial func(ctx context.Context) (net.Conn, error)

	conns, turns, up, down atomic.Int64
}

// Stats are what a relay has carried since it started.
type Stats struct {
	// Conns counts the connections accepted.
	Conns int64
	// Turns counts, over every connection, the times the client received
	// bytes after having sent some since it last received any: one round
	// trip each, as the client sees its exchanges (requests sent without
	// waiting for their replies count once). A connection that carries
	// several clients' exchanges at once (SSH channels) counts those that
	// overlap once.
	Turns int64
	// Up and Down count the bytes delivered to the server and to the client.
	Up, Down int64
}

// Sub is s minus an earlier snapshot: what was carried in between.
func (s Stats) Sub(o Stats) Stats {
	return Stats{Conns: s.Conns - o.Conns, Turns: s.Turns - o.Turns, Up: s.Up - o.Up, Down: s.Down - o.Down}
}

// Stats returns the totals so far.
func (r *Relay) Stats() Stats {
	return Stats{Conns: r.conns.Load(), Turns: r.turns.Load(), Up: r.up.Load(), Down: r.down.Load()}
}

// Serve accepts connections on ln and relays each until ctx ends, then
// closes ln and every connection and returns ctx's error once all have
// stopped. An accept error other than ln being closed ends it too.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		r.conns.Add(1)
		wg.Go(func() { r.relay(ctx, c) })
	}
}

// chunk is what one read returned, and when it is due on the other side.
// A chunk with end set is the end of the direction: err is io.EOF for a
// half-close.
type chunk struct {
	data []byte
	due  time.Time
	end  bool
	err  error
}

// queueLen bounds the chunks in flight per direction: a reader that gets
// that far ahead waits, and TCP's flow control slows the sender.
const queueLen = 256

// readSize is the most one read takes, and so the largest chunk.
const readSize = 32 << 10

// conn is one relayed connection.
type conn struct {
	r        *Relay
	client   net.Conn
	upstream net.Conn
	// sent is set when the client's bytes are read and cleared when the
	// client is next given bytes: a turn, counted then.
	sent  atomic.Bool
	abort chan struct{} // closed to stop everything at once

	mu      sync.Mutex
	stopped bool
}

// stop closes both sides and tells every goroutine of c to return.
func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	close(c.abort)
	_ = c.client.Close()
	if c.upstream != nil {
		_ = c.upstream.Close()
	}
}

// connect records the upstream connection, or closes it when c has
// stopped meanwhile.
func (c *conn) connect(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = up.Close()
		return false
	}
	c.upstream = up
	return true
}

// relay carries one connection until both directions have ended.
func (r *Relay) relay(ctx context.Context, client net.Conn) {
	accepted := time.Now()
	c := &conn{r: r, client: client, abort: make(chan struct{})}
	noDelay(client)
	// Deferred calls run last first: stop, then wait for the goroutines
	// it stops.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.stop()
	stop := context.AfterFunc(ctx, c.stop)
	defer stop()

	toServer := make(chan chunk, queueLen)
	toClient := make(chan chunk, queueLen)
	wg.Go(func() { c.read(client, toServer, true) })

	// The upstream connection opens when the client's would have been
	// accepted over a real link (see the package comment).
	select {
	case <-time.After(time.Until(accepted.Add(3 * r.Delay))):
	case <-c.abort:
		return
	}
	up, err := r.Dial(ctx)
	if err != nil {
		return
	}
	noDelay(up)
	if !c.connect(up) {
		return
	}
	wg.Go(func() { c.read(up, toClient, false) })
	wg.Go(func() { c.write(toClient, client, false) })
	c.write(toServer, up, true)
	wg.Wait()
}

// read stamps what src sends and queues it, until src ends.
func (c *conn) read(src net.Conn, q chan<- chunk, fromClient bool) {
	defer close(q)
	buf := make([]byte, readSize)
	for {
		n, err := src.Read(buf)
		now := time.Now()
		if n > 0 {
			if fromClient {
				c.sent.Store(true)
			}
			select {
			case q <- chunk{data: append([]byte(nil), buf[:n]...), due: now.Add(c.r.Delay)}:
			case <-c.abort:
				return
			}
		}
		if err != nil {
			select {
			case q <- chunk{due: now.Add(c.r.Delay), end: true, err: err}:
			case <-c.abort:
			}
			return
		}
	}
}

// write delivers each chunk of q to dst when it is due. The end of q is
// passed on as a half-close, or stops the whole connection when it was
// an error; so does a failed write.
func (c *conn) write(q <-chan chunk, dst net.Conn, toServer bool) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ch := range q {
		if d := time.Until(ch.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-c.abort:
				return
			}
		}
		if ch.end {
			if !errors.Is(ch.err, io.EOF) {
				c.stop()
				return
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
				c.stop()
			}
			return
		}
		if !toServer && c.sent.Swap(false) {
			c.r.turns.Add(1)
		}
		// Counted before the write, so that whoever reads the bytes
		// finds them counted.
		if toServer {
			c.r.up.Add(int64(len(ch.data)))
		} else {
			c.r.down.Add(int64(len(ch.data)))
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.stop()
			return
		}
	}
}

// noDelay makes sure a TCP connection sends what it is given at once: Go
// sets it by default, and the relay's timing depends on it.
func noDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}
