package transport

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
)

// instantConn reads and writes at once, as much as asked.
type instantConn struct{ net.Conn }

func (instantConn) Read(p []byte) (int, error)  { return len(p), nil }
func (instantConn) Write(p []byte) (int, error) { return len(p), nil }

func TestRoundTripConn(t *testing.T) {
	for _, tc := range []struct {
		ops  string // w: write a byte, r: read a byte, 0: read or write nothing
		want int64
	}{
		{"", 0},
		{"wr", 1},
		{"wrwrwr", 3},
		{"wwwr", 1},    // pipelined requests: one wait
		{"wrrr", 1},    // an answer in several reads
		{"rrwr", 1},    // what the peer sent unasked costs nothing
		{"w0r", 1},     // an empty read is no answer
		{"r0w0rw", 1},  // an empty write is no request
		{"wrrwwrw", 2}, // a write with no read after it waits for nothing yet
	} {
		c := CountRoundTrips(instantConn{})
		for _, op := range tc.ops {
			var err error
			switch op {
			case 'w':
				_, err = c.Write([]byte{1})
			case 'r':
				_, err = c.Read(make([]byte, 1))
			case '0':
				if _, err = c.Read(nil); err == nil {
					_, err = c.Write(nil)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := c.RoundTrips(); got != tc.want {
			t.Errorf("%q: %d round trips, want %d", tc.ops, got, tc.want)
		}
	}
}

// recorder keeps the log records with a message, with the attributes
// they were logged with.
type recorder struct {
	msg  string
	mu   *sync.Mutex
	got  *[]slog.Record
	with []slog.Attr
}

func newRecorder(msg string) recorder {
	return recorder{msg: msg, mu: new(sync.Mutex), got: new([]slog.Record)}
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == r.msg {
		rec = rec.Clone()
		rec.AddAttrs(r.with...)
		r.mu.Lock()
		defer r.mu.Unlock()
		*r.got = append(*r.got, rec)
	}
	return nil
}
func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.with = append(append([]slog.Attr(nil), r.with...), as...)
	return r
}
func (r recorder) WithGroup(string) slog.Handler { return r }

// records returns what was kept so far.
func (r recorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), *r.got...)
}

// attr returns a record's attribute, "" when it has none by that name.
func attr(rec slog.Record, key string) slog.Value {
	var v slog.Value
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// WrapConn is given every TCP connection to the tunnel, and the round
// trips -vv logs for a connection's handshake and a command are those of
// the stream they ran on.
func TestWrapConnAndLoggedRoundTrips(t *testing.T) {
	f := newFleet(t)
	var mu sync.Mutex
	var wrapped []*RoundTripConn
	opts := f.options()
	opts.WrapConn = func(c net.Conn) net.Conn {
		rt := CountRoundTrips(c)
		mu.Lock()
		defer mu.Unlock()
		wrapped = append(wrapped, rt)
		return rt
	}
	connected, ran := newRecorder("connected"), newRecorder("ran")
	opts.Logger = slog.New(slog.NewMultiHandler(connected, ran))
	j := f.dial(t, opts)
	if len(wrapped) != 1 {
		t.Fatalf("DialTunnel wrapped %d connections, want 1", len(wrapped))
	}
	handshake := wrapped[0].RoundTrips()
	// An SSH handshake waits for its peer a few times at least: banner,
	// key exchange, authentication.
	if handshake < 3 {
		t.Errorf("the tunnel's handshake took %d round trips, want at least 3", handshake)
	}
	if got := connected.records(); len(got) != 1 || attr(got[0], "round_trips").Int64() != handshake {
		t.Errorf("logged %v, want one connection of %d round trips", got, handshake)
	}

	s, err := j.Dial(t.Context(), f.targets["app-1"])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := wrapped[0].RoundTrips()
	if _, err := s.Run(t.Context(), "hostname", nil); err != nil {
		t.Fatal(err)
	}
	// Through the tunnel: what the channel carried, at least one round
	// trip, is no more than the tunnel connection carried.
	runs := ran.records()
	if len(runs) != 1 {
		t.Fatalf("logged %d runs, want 1", len(runs))
	}
	onTunnel := wrapped[0].RoundTrips() - before
	if got := attr(runs[0], "round_trips").Int64(); got < 1 || got > onTunnel {
		t.Errorf("logged %d round trips for a command through the tunnel, want 1 to %d", got, onTunnel)
	}
	if got := connected.records(); len(got) != 2 || attr(got[1], "host").String() != "app-1" || attr(got[1], "round_trips").Int64() < 3 {
		t.Errorf("logged connections %v, want app-1's with its handshake's round trips", got)
	}

	fresh, err := j.DialFresh(t.Context(), f.targets["tunnel-1"])
	if err != nil {
		t.Fatal(err)
	}
	fresh.Close()
	if len(wrapped) != 2 {
		t.Errorf("DialFresh of the tunnel wrapped %d connections in all, want 2", len(wrapped))
	}
}
