package transport

import (
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The server's hostkeys-00@openssh.com, which wants no answer, gets a
// keepalive back (whose packet carries the TCP acknowledgement sshd waits
// for before its next small packet), once; a request that wants an answer
// is refused, as x/crypto/ssh's own handler does.
func TestServeGlobalRequestsNudges(t *testing.T) {
	// net.Pipe does not buffer, and both ends send their version first.
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
	go serveGlobalRequests(c, reqs)
	srv := <-started
	if srv.err != nil {
		t.Fatal(srv.err)
	}
	for range 2 {
		if _, _, err := srv.conn.SendRequest("hostkeys-00@openssh.com", false, []byte("keys")); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, err := srv.conn.SendRequest("something@example.com", true, nil); ok || err != nil {
		t.Errorf("a request that wants an answer: ok %v, err %v; want refused", ok, err)
	}
	var got []string
	timeout := time.After(2 * time.Second)
	for len(got) < 2 {
		select {
		case r := <-srv.reqs:
			got = append(got, r.Type)
			if r.WantReply {
				t.Errorf("%s wants a reply", r.Type)
			}
			if len(got) == 1 {
				// A request of our own after the nudge marks its end.
				go func() { _, _, _ = c.SendRequest("end@example.com", false, nil) }()
			}
		case <-timeout:
			t.Fatalf("the server got %v, want a keepalive", got)
		}
	}
	if got[0] != "keepalive@openssh.com" || got[1] != "end@example.com" {
		t.Errorf("the server got %v, want one keepalive, then the end mark", got)
	}
}
