package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Knock proves that t accepts new SSH connections from where fwpush's come
// from, without logging in: a new TCP connection to t's SSH port, on which
// its SSH server must send its banner ("SSH-2.0-..."). For the tunnel host
// it is a TCP connection from here to its public address; for any other
// host a new direct-tcpip channel through the tunnel, which the tunnel
// host opens as it opens those of fwpush's logins. It costs one round trip
// where a login costs eight.
//
// What it proves is what a host's firewall decides for a new login: the
// first packet of a new connection (conntrack's NEW) is let in, and the
// answers are let out. Once the banner has come, everything else of a
// login travels on that established connection, which the rules treat as
// they treat the session fwpush already holds to the host: the caller
// proves that part by using that session after the knock.
func (j *JumpDialer) Knock(ctx context.Context, t Target) error {
	if err := checkTarget(t); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, j.timeout, j.timeoutErr())
	defer cancel()
	start := time.Now()
	var conn net.Conn
	var via string
	// The round trips -vv logs: those of the tunnel's connection for a
	// channel through it; for a TCP connection of its own, its handshake.
	trips := func() int64 { return 1 }
	if t.Addr == j.tunnel.Addr {
		if _, err := j.current(); errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("host %s: knock: %w", t.Name, err)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.Addr)
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return j.knockErr(t, "", err)
		}
		if j.opts.WrapConn != nil {
			c = j.opts.WrapConn(c)
		}
		conn = c
	} else {
		tc, err := j.current()
		if err != nil {
			return fmt.Errorf("host %s: knock: %w", t.Name, err)
		}
		via = j.tunnel.Name
		before := tc.rt.RoundTrips()
		trips = func() int64 { return tc.rt.RoundTrips() - before }
		conn, err = dialChannel(ctx, tc, t.Addr)
		if err != nil {
			return j.knockErr(t, via, err)
		}
	}
	defer conn.Close()
	// A channel through the tunnel supports no deadline: ctx closes it.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	banner, err := readBanner(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return j.knockErr(t, via, err)
	}
	j.log.Debug("knocked", "host", t.Name, "banner", banner, "took", time.Since(start), "round_trips", trips())
	return nil
}

// maxBanner bounds what Knock reads before the banner: RFC 4253 lets a
// server send lines of text first, and a banner line is at most 255 bytes.
const maxBanner = 8 << 10

// readBanner reads an SSH server's lines up to its version line, which it
// returns.
func readBanner(conn net.Conn) (string, error) {
	r := bufio.NewReaderSize(conn, 512)
	read := 0
	for read < maxBanner {
		line, err := r.ReadSlice('\n')
		read += len(line)
		if bytes.HasPrefix(line, []byte("SSH-")) && err == nil {
			return string(bytes.TrimRight(line, "\r\n")), nil
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a long line of text before the banner
		case err != nil:
			return "", fmt.Errorf("no SSH banner: %w", err)
		}
	}
	return "", errors.New("no SSH banner in what the server sent")
}

// knockErr names the host and the way the knock went.
func (j *JumpDialer) knockErr(t Target, via string, err error) error {
	if via != "" {
		return fmt.Errorf("host %s: knock on %s through tunnel %s: %w", t.Name, t.Addr, via, err)
	}
	return fmt.Errorf("host %s: knock on %s: %w", t.Name, t.Addr, err)
}
