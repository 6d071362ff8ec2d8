package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// start runs a relay with delay d on a loopback port, in front of a server
// whose accepted connections arrive on the returned channel, each with
// the time it was accepted.
func start(t *testing.T, d time.Duration) (*Relay, string, <-chan accepted) {
	t.Helper()
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	conns := make(chan accepted, 16)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			conns <- accepted{c.(*net.TCPConn), time.Now()}
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Delay: d, Dial: func(ctx context.Context) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", srv.Addr().String())
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v, want context.Canceled", err)
		}
	})
	return r, ln.Addr().String(), conns
}

type accepted struct {
	conn *net.TCPConn
	at   time.Time
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func serverOf(t *testing.T, conns <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-conns:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("the relay never connected to the server")
	}
	return accepted{}
}

// readByte reads one byte and says when it came.
func readByte(t *testing.T, c net.Conn) (byte, time.Time) {
	t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatalf("read: %v", err)
	}
	return b[0], time.Now()
}

func writeByte(t *testing.T, c net.Conn, b byte) time.Time {
	t.Helper()
	at := time.Now()
	if _, err := c.Write([]byte{b}); err != nil {
		t.Fatalf("write: %v", err)
	}
	return at
}

// TestDelay: every byte is held at least the delay each way, the server
// accepts 1.5 round trips after the client connected (the handshake the
// relay ends early), and each exchange the client starts is one turn.
func TestDelay(t *testing.T) {
	const d = 25 * time.Millisecond
	r, addr, conns := start(t, d)
	connected := time.Now()
	c := dial(t, addr)
	s := serverOf(t, conns)
	if got := s.at.Sub(connected); got < 3*d {
		t.Errorf("the server accepted %v after the client connected, want at least %v", got, 3*d)
	}
	// A greeting from the server, as sshd's banner: it reaches the client
	// two round trips after connect, as over a real link.
	sent := writeByte(t, s.conn, 'S')
	if b, at := readByte(t, c); b != 'S' || at.Sub(sent) < d || at.Sub(connected) < 4*d {
		t.Errorf("greeting %q after %v (%v after connect), want 'S' after at least %v (%v)", b, at.Sub(sent), at.Sub(connected), d, 4*d)
	}
	const exchanges = 5
	for i := range byte(exchanges) {
		sent := writeByte(t, c, 'a'+i)
		b, at := readByte(t, s.conn)
		if b != 'a'+i || at.Sub(sent) < d {
			t.Errorf("exchange %d: the server got %q after %v, want %q after at least %v", i, b, at.Sub(sent), 'a'+i, d)
		}
		sent = writeByte(t, s.conn, 'A'+i)
		b, at = readByte(t, c)
		if b != 'A'+i || at.Sub(sent) < d {
			t.Errorf("exchange %d: the client got %q after %v, want %q after at least %v", i, b, at.Sub(sent), 'A'+i, d)
		}
	}
	// Two requests sent without waiting, then their replies: one turn.
	writeByte(t, c, 'x')
	writeByte(t, c, 'y')
	readByte(t, s.conn)
	readByte(t, s.conn)
	writeByte(t, s.conn, 'X')
	writeByte(t, s.conn, 'Y')
	readByte(t, c)
	readByte(t, c)
	want := Stats{Conns: 1, Turns: exchanges + 1, Up: exchanges + 2, Down: 1 + exchanges + 2}
	if got := r.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// TestOrder: megabytes each way at once, written in pieces of every size,
// arrive whole and in order, and each side's end arrives after its data.
func TestOrder(t *testing.T) {
	r, addr, conns := start(t, 5*time.Millisecond)
	c := dial(t, addr)
	s := serverOf(t, conns).conn
	rnd := rand.New(rand.NewPCG(1, 2))
	up, down := make([]byte, 3<<20), make([]byte, 3<<20)
	for i := range up {
		up[i], down[i] = byte(rnd.Uint32()), byte(rnd.Uint32())
	}
	send := func(conn *net.TCPConn, data []byte, seed uint64) <-chan error {
		errc := make(chan error, 1)
		go func() {
			rnd := rand.New(rand.NewPCG(seed, seed))
			for len(data) > 0 {
				n := min(len(data), 1+rnd.IntN(70000))
				if _, err := conn.Write(data[:n]); err != nil {
					errc <- err
					return
				}
				data = data[n:]
			}
			errc <- conn.CloseWrite()
		}()
		return errc
	}
	upErr, downErr := send(c, up, 3), send(s, down, 4)
	gotDown, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	gotUp, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(<-upErr, <-downErr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotUp, up) {
		t.Errorf("the server got %d bytes, not the %d the client sent (or not in order)", len(gotUp), len(up))
	}
	if !bytes.Equal(gotDown, down) {
		t.Errorf("the client got %d bytes, not the %d the server sent (or not in order)", len(gotDown), len(down))
	}
	if st := r.Stats(); st.Up != int64(len(up)) || st.Down != int64(len(down)) {
		t.Errorf("stats %+v, want %d bytes up and %d down", st, len(up), len(down))
	}
}

// TestHalfClose: a side that has finished sending still receives, in
// both orders, and the end of each direction is held the delay too.
func TestHalfClose(t *testing.T) {
	const d = 10 * time.Millisecond
	for _, clientFirst := range []bool{true, false} {
		_, addr, conns := start(t, d)
		c := dial(t, addr)
		s := serverOf(t, conns).conn
		first, second := c, s
		if !clientFirst {
			first, second = s, c
		}
		if _, err := first.Write([]byte("question")); err != nil {
			t.Fatal(err)
		}
		closed := time.Now()
		if err := first.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(second)
		if err != nil || string(got) != "question" || time.Since(closed) < d {
			t.Errorf("client first %v: read %q, %v after %v; want \"question\" then EOF after at least %v", clientFirst, got, err, time.Since(closed), d)
		}
		if _, err := second.Write([]byte("answer")); err != nil {
			t.Fatalf("client first %v: write after the other side's half-close: %v", clientFirst, err)
		}
		if err := second.Close(); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(first)
		if err != nil || string(got) != "answer" {
			t.Errorf("client first %v: read %q, %v after the half-close; want \"answer\" then EOF", clientFirst, got, err)
		}
	}
}

// TestServeStops: ending Serve's context closes the connections in
// flight, and a server that cannot be reached closes the client's.
func TestServeStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The first connection's server refuses it; the second's never
	// answers.
	refused := make(chan struct{}, 1)
	var dials atomic.Int32
	r := &Relay{Delay: time.Millisecond, Dial: func(ctx context.Context) (net.Conn, error) {
		if dials.Add(1) == 1 {
			refused <- struct{}{}
			return nil, errors.New("refused")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	c := dial(t, ln.Addr().String())
	<-refused
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read from a relayed connection whose server is unreachable: %d, %v; want it closed", n, err)
	}

	c = dial(t, ln.Addr().String())
	for dials.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return when its context ended")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read after Serve returned: %v, want the connection closed", err)
	}
}
