package runner

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is an in-process SSH server on this machine that accepts key
// and, as a bastion, forwards every direct-tcpip channel to to.
type sshServer struct {
	srv  *gliderssh.Server
	addr string
	key  ssh.Signer
}

func newSSHServer(t *testing.T, key ssh.PublicKey, to string) *sshServer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{key: hostKey, srv: &gliderssh.Server{
		Handler: func(s gliderssh.Session) { _ = s.Exit(0) },
		PublicKeyHandler: func(_ gliderssh.Context, k gliderssh.PublicKey) bool {
			return gliderssh.KeysEqual(k, key)
		},
	}}
	s.srv.AddHostKey(hostKey)
	if to != "" {
		s.srv.LocalPortForwardingCallback = func(gliderssh.Context, string, uint32) bool { return true }
		s.srv.ChannelHandlers = map[string]gliderssh.ChannelHandler{
			"session": gliderssh.DefaultSessionHandler,
			"direct-tcpip": func(srv *gliderssh.Server, conn *ssh.ServerConn, nc ssh.NewChannel, ctx gliderssh.Context) {
				var d struct {
					DestAddr   string
					DestPort   uint32
					OriginAddr string
					OriginPort uint32
				}
				if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil {
					_ = nc.Reject(ssh.ConnectionFailed, err.Error())
					return
				}
				host, port, _ := net.SplitHostPort(to)
				p, _ := strconv.Atoi(port)
				d.DestAddr, d.DestPort = host, uint32(p)
				gliderssh.DirectTCPIPHandler(srv, conn, forwarded{nc, ssh.Marshal(&d)}, ctx)
			},
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

type forwarded struct {
	ssh.NewChannel
	extra []byte
}

func (f forwarded) ExtraData() []byte { return f.extra }

// A site's bastion lost in the middle of a command: the next host opened
// goes through the standby, OnReach and Reached say so, a host opened
// before may read again (Relink); with every bastion of the site gone, a
// host fails for the way to it (*LinkError), naming the bastion lost.
func TestSSHFleetFailover(t *testing.T) {
	plan := sitesPlan(t)
	inv := plan.Inventory
	opts := testOptions(t)
	opts.Timeout = time.Second
	key, err := os.ReadFile(opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	app := newSSHServer(t, client.PublicKey(), "")
	e1 := newSSHServer(t, client.PublicKey(), app.addr)
	e2 := newSSHServer(t, client.PublicKey(), app.addr)
	var known []string
	for _, h := range []struct {
		name string
		s    *sshServer
	}{{"bastion-e1", e1}, {"bastion-e2", e2}, {"app-1", app}} {
		ih, _ := inv.Host(h.name)
		addr := h.s.addr
		if h.name == "app-1" {
			addr = netip.AddrPortFrom(ih.PrivateIP, uint16(ih.Port)).String()
		} else {
			ap := netip.MustParseAddrPort(h.s.addr)
			ih.PublicIP, ih.Port = ap.Addr(), int(ap.Port())
		}
		known = append(known, knownhosts.Line([]string{knownhosts.Normalize(addr)}, h.s.key.PublicKey()))
	}
	if err := os.WriteFile(opts.KnownHosts, []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reached []Reach
	fleet, err := Open(inv, opts, OpenOptions{OnReach: func(r Reach) {
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	app1, _ := inv.Host("app-1")
	h, err := fleet.Open(t.Context(), app1)
	if err != nil {
		t.Fatalf("app-1 through bastion-e1: %v", err)
	}
	h.Close()
	if got := fleet.Tunnel(t.Context(), "east"); got != "bastion-e1" {
		t.Fatalf("east carried by %q, want bastion-e1", got)
	}

	_ = e1.srv.Close() // bastion-e1 gone, and every connection to it
	h, err = fleet.Open(t.Context(), app1)
	if err != nil {
		t.Fatalf("app-1 once bastion-e1 is gone: %v, want it through bastion-e2", err)
	}
	h.Close()
	if got := fleet.Tunnel(t.Context(), "east"); got != "bastion-e2" {
		t.Errorf("east carried by %q, want bastion-e2", got)
	}
	mu.Lock()
	if len(reached) != 2 || reached[1].Via != "bastion-e2" || len(reached[1].Skipped) != 1 ||
		reached[1].Skipped[0].Bastion != "bastion-e1" || !strings.Contains(reached[1].Skipped[0].Err.Error(), "lost during the run") {
		t.Errorf("OnReach told %+v, want east reached, then through bastion-e2, bastion-e1 lost during the run", reached)
	}
	mu.Unlock()
	if r := fleet.Reached(); len(r) != 1 || r[0].Via != "bastion-e2" {
		t.Errorf("Reached() = %+v, want east through bastion-e2", r)
	}
	// Opened through bastion-e2 already: nothing lost since.
	if err := fleet.Relink(t.Context(), app1); !errors.Is(err, errLinkUp) {
		t.Errorf("Relink after a failover app-1 was opened through: %v, want the way up", err)
	}

	_ = e2.srv.Close() // and the standby
	_, err = fleet.Open(t.Context(), app1)
	var le *LinkError
	if !errors.As(err, &le) || le.Bastion != "bastion-e2" || !linkLost(err) || !strings.Contains(err.Error(), "no bastion of site east answers") {
		t.Errorf("app-1 with every bastion of east gone: %v, want a *LinkError naming bastion-e2", err)
	}
	// A failover that failed stands for a timeout: hosts do not all try
	// every bastion again.
	start := time.Now()
	if _, err := fleet.Open(t.Context(), app1); !errors.As(err, &le) || time.Since(start) > opts.Timeout/2 {
		t.Errorf("app-1 again at once: %v after %s, want the same *LinkError, at once", err, time.Since(start))
	}
}
