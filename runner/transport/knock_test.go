package transport

import (
	"net"
	"strings"
	"testing"
	"time"
)

// Knock reads the SSH banner of a new connection: through the tunnel for a
// host behind it, from here for the tunnel itself, and fails where no SSH
// server answers.
func TestKnock(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	opts := f.options()
	opts.Timeout = 500 * time.Millisecond
	j := f.dial(t, opts)
	// A port that speaks, but not SSH.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("220 smtp.example ESMTP\r\n"))
			c.Close()
		}
	}()
	f.route("10.0.0.7:22", silentListener(t))
	f.route("10.0.0.8:22", ln.Addr().String())

	tests := []struct {
		name string
		t    Target
		want string // in the error; "" for none
	}{
		{name: "tunnel, from here", t: f.targets["tunnel-1"]},
		{name: "through the tunnel", t: f.targets["app-1"]},
		{name: "another port", t: f.targets["db-1"]},
		{name: "no route", t: Target{Name: "gone", Addr: "10.0.0.99:22"}, want: "tunnel host refused the channel"},
		{name: "silent", t: Target{Name: "silent", Addr: "10.0.0.7:22"}, want: "no answer within"},
		{name: "not ssh", t: Target{Name: "smtp", Addr: "10.0.0.8:22"}, want: "no SSH banner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.tunnel.accepted.Load()
			err := j.Knock(t.Context(), tt.t)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Knock: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Knock: %v, want an error saying %q", err, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), "host "+tt.t.Name):
				t.Errorf("Knock: %v does not name the host", err)
			}
			// Only the tunnel's own knock is a new connection from here.
			fromHere := f.tunnel.accepted.Load() - before
			if want := int32(0); tt.t.Addr == f.tunnel.addr {
				if fromHere != 1 {
					t.Errorf("the tunnel accepted %d connections from here, want 1", fromHere)
				}
			} else if fromHere != want {
				t.Errorf("the tunnel accepted %d connections from here, want none: the knock goes through it", fromHere)
			}
		})
	}
	// Every knock on a host behind the tunnel was a channel through it.
	if got := f.tunnel.forwarded(); len(got) != 5 {
		t.Errorf("the tunnel forwarded %v, want a channel per knock behind it", got)
	}
}
