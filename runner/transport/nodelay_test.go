package transport

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The server's hostkeys-00@openssh.com, which wants no answer, gets a
// keepalive back (whose packet carries the TCP acknowledgement sshd waits
// for before its next small packet), once, where the connection does not
// acknowledge at once itself (nudge); a request that wants an answer is
// refused, as x/crypto/ssh's own handler does.
func TestServeGlobalRequestsNudges(t *testing.T) {
	for _, nudge := range []bool{true, false} {
		t.Run(fmt.Sprintf("nudge %v", nudge), func(t *testing.T) {
			got := serveGlobal(t, nudge)
			want := []string{"end@example.com"}
			if nudge {
				want = append([]string{"keepalive@openssh.com"}, want...)
			}
			if !slices.Equal(got, want) {
				t.Errorf("the server got %v, want %v", got, want)
			}
		})
	}
}

// serveGlobal has a server send two hostkeys-00 and a request that wants
// an answer to serveGlobalRequests, then the client send a mark of its
// own: what the server got, up to the mark.
func serveGlobal(t *testing.T, nudge bool) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(ed25519Signer(t))
	type server struct {
		conn *ssh.ServerConn
		reqs <-chan *ssh.Request
		err  error
	}
	started := make(chan server, 1)
	go func() {
		serverEnd, err := ln.Accept()
		if err != nil {
			started <- server{err: err}
			return
		}
		t.Cleanup(func() { serverEnd.Close() })
		conn, _, reqs, err := ssh.NewServerConn(serverEnd, scfg)
		started <- server{conn, reqs, err}
	}()
	clientEnd, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clientEnd.Close() })
	c, _, reqs, err := ssh.NewClientConn(withQuickAck(clientEnd), "pipe", &ssh.ClientConfig{User: "u", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	go serveGlobalRequests(c, reqs, nudge)
	srv := <-started
	if srv.err != nil {
		t.Fatal(srv.err)
	}
	for range 2 {
		if _, _, err := srv.conn.SendRequest("hostkeys-00@openssh.com", false, []byte("keys")); err != nil {
			t.Fatal(err)
		}
	}
	// Answered, the request was handled after the hostkeys-00 before it:
	// the nudge, if any, is sent, and the mark comes after it.
	if ok, _, err := srv.conn.SendRequest("something@example.com", true, nil); ok || err != nil {
		t.Errorf("a request that wants an answer: ok %v, err %v; want refused", ok, err)
	}
	if _, _, err := c.SendRequest("end@example.com", false, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(2 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "end@example.com" {
		select {
		case r := <-srv.reqs:
			got = append(got, r.Type)
			if r.WantReply {
				t.Errorf("%s wants a reply", r.Type)
			}
		case <-timeout:
			t.Fatalf("the server got %v, and no end mark", got)
		}
	}
	return got
}
