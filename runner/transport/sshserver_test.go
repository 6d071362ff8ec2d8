package transport

import (
	"fmt"
	"io"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// testServer is an in-process SSH server standing in for one host. A
// tunnel server also serves direct-tcpip channels into a fake private
// network: inventory addresses such as 10.0.0.5:22 mapped to loopback
// listeners, so targets are named (and verified) as a real inventory
// names them.
type testServer struct {
	name     string
	addr     string // where it listens, 127.0.0.1:port
	hostKeys []ssh.Signer

	accepted atomic.Int32 // TCP connections that reached the server

	mu       sync.Mutex
	conns    []net.Conn
	forwards []string      // inventory addresses asked for through direct-tcpip
	signals  chan string   // signals received by "sleep"
	started  chan struct{} // one token per "sleep" started
	hold     chan struct{} // when set, a signalled "sleep" exits only once it is closed
}

// holdExits keeps every "sleep" signalled from now on running until the
// returned release is called (or the test ends): the remote process
// outlives its signal, as one that takes its time to end does.
func (ts *testServer) holdExits(t *testing.T) (release func()) {
	t.Helper()
	hold := make(chan struct{})
	ts.mu.Lock()
	ts.hold = hold
	ts.mu.Unlock()
	release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	return release
}

type serverConfig struct {
	hostKeys   []ssh.Signer
	authorized []ssh.PublicKey          // client keys accepted
	network    func() map[string]string // inventory address -> real address; set for a tunnel
}

func newTestServer(t *testing.T, name string, cfg serverConfig) *testServer {
	t.Helper()
	ts := &testServer{
		name:     name,
		hostKeys: cfg.hostKeys,
		signals:  make(chan string, 16),
		started:  make(chan struct{}, 16),
	}
	srv := &gliderssh.Server{
		Handler: ts.handle,
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			for _, k := range cfg.authorized {
				if gliderssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
		ConnCallback: func(_ gliderssh.Context, c net.Conn) net.Conn {
			ts.accepted.Add(1)
			ts.mu.Lock()
			ts.conns = append(ts.conns, c)
			ts.mu.Unlock()
			return c
		},
	}
	for _, k := range cfg.hostKeys {
		srv.AddHostKey(k)
	}
	if cfg.network != nil {
		srv.LocalPortForwardingCallback = func(gliderssh.Context, string, uint32) bool { return true }
		srv.ChannelHandlers = map[string]gliderssh.ChannelHandler{
			"session":      gliderssh.DefaultSessionHandler,
			"direct-tcpip": ts.directTCPIP(cfg.network),
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ts
}

// directTCPIP routes a channel to the real address of the inventory
// address it asks for, then lets the library's handler do the forwarding.
func (ts *testServer) directTCPIP(network func() map[string]string) gliderssh.ChannelHandler {
	return func(srv *gliderssh.Server, conn *ssh.ServerConn, newChan ssh.NewChannel, ctx gliderssh.Context) {
		var d struct {
			DestAddr   string
			DestPort   uint32
			OriginAddr string
			OriginPort uint32
		}
		if err := ssh.Unmarshal(newChan.ExtraData(), &d); err != nil {
			newChan.Reject(ssh.ConnectionFailed, err.Error())
			return
		}
		want := net.JoinHostPort(d.DestAddr, strconv.Itoa(int(d.DestPort)))
		ts.mu.Lock()
		ts.forwards = append(ts.forwards, want)
		ts.mu.Unlock()
		real, ok := network()[want]
		if !ok {
			newChan.Reject(ssh.ConnectionFailed, "connect to "+want+": no route to host")
			return
		}
		host, port, _ := net.SplitHostPort(real)
		p, _ := strconv.Atoi(port)
		d.DestAddr, d.DestPort = host, uint32(p)
		gliderssh.DirectTCPIPHandler(srv, conn, rerouted{newChan, ssh.Marshal(&d)}, ctx)
	}
}

type rerouted struct {
	ssh.NewChannel
	extra []byte
}

func (r rerouted) ExtraData() []byte { return r.extra }

// handle implements the few fixed commands the tests run.
func (ts *testServer) handle(s gliderssh.Session) {
	switch cmd := s.RawCommand(); cmd {
	case "cat":
		io.Copy(s, s)
	case "exit 3":
		io.WriteString(s.Stderr(), "boom: something failed\n")
		s.Exit(3)
	case "whoami":
		fmt.Fprintln(s, s.User())
	case "hostname":
		fmt.Fprintln(s, ts.name)
	case "sleep":
		sigs := make(chan gliderssh.Signal, 1)
		s.Signals(sigs)
		ts.started <- struct{}{}
		select {
		case sig := <-sigs:
			ts.signals <- string(sig)
			ts.mu.Lock()
			hold := ts.hold
			ts.mu.Unlock()
			if hold != nil {
				<-hold
			}
			s.Exit(143)
		case <-time.After(20 * time.Second):
		}
	default:
		fmt.Fprintf(s.Stderr(), "%s: command not found\n", cmd)
		s.Exit(127)
	}
}

// dropConns closes every connection the server accepted, as a firewall
// change or a restart on the host would.
func (ts *testServer) dropConns() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range ts.conns {
		c.Close()
	}
}

func (ts *testServer) forwarded() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.forwards...)
}

// silentListener accepts TCP connections and never says a word, like a
// host whose sshd hangs or a middlebox that swallows the handshake.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// fleet is a tunnel server and two hosts behind it on a fake private
// network, with a known_hosts file that knows them all and an identity
// every server accepts.
type fleet struct {
	dir        string
	tunnel     *testServer
	hosts      map[string]*testServer // by name
	targets    map[string]Target      // by name, the tunnel included
	network    map[string]string      // inventory address -> real address
	netMu      sync.Mutex
	clientKey  ssh.Signer
	knownHosts string
	identity   string
}

// Private addresses of the fleet's hosts. db-1 listens on a non-default
// port to exercise the "[ip]:port" form of known_hosts.
const (
	app1Addr = "10.0.0.5:22"
	db1Addr  = "10.0.0.6:2222"
)

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{
		dir:     t.TempDir(),
		hosts:   map[string]*testServer{},
		targets: map[string]Target{},
		network: map[string]string{},
	}
	f.identity, f.clientKey = writeIdentity(t, f.dir, "")
	f.knownHosts = filepath.Join(f.dir, "known_hosts")
	authorized := []ssh.PublicKey{f.clientKey.PublicKey()}

	f.tunnel = newTestServer(t, "tunnel-1", serverConfig{
		hostKeys:   []ssh.Signer{ed25519Signer(t)},
		authorized: authorized,
		network:    f.routes,
	})
	f.targets["tunnel-1"] = Target{Name: "tunnel-1", Addr: f.tunnel.addr}
	var known []string
	known = append(known, knownLine(f.tunnel.addr, f.tunnel.hostKeys[0].PublicKey()))
	for _, h := range []struct{ name, addr string }{{"app-1", app1Addr}, {"db-1", db1Addr}} {
		ts := newTestServer(t, h.name, serverConfig{hostKeys: []ssh.Signer{ed25519Signer(t)}, authorized: authorized})
		f.hosts[h.name] = ts
		f.route(h.addr, ts.addr)
		f.targets[h.name] = Target{Name: h.name, Addr: h.addr}
		known = append(known, knownLine(h.addr, ts.hostKeys[0].PublicKey()))
	}
	writeFile(t, f.knownHosts, known...)
	return f
}

func (f *fleet) routes() map[string]string {
	f.netMu.Lock()
	defer f.netMu.Unlock()
	return maps.Clone(f.network)
}

// route puts a server on the fake private network at an inventory address.
func (f *fleet) route(invAddr, realAddr string) {
	f.netMu.Lock()
	defer f.netMu.Unlock()
	f.network[invAddr] = realAddr
}

func (f *fleet) options() Options {
	return Options{User: "root", Identity: f.identity, KnownHosts: f.knownHosts, Timeout: 5 * time.Second}
}

// dial opens a JumpDialer on the fleet's tunnel and closes it with the test.
func (f *fleet) dial(t *testing.T, opts Options) *JumpDialer {
	t.Helper()
	j, err := DialTunnel(t.Context(), f.targets["tunnel-1"], opts)
	if err != nil {
		t.Fatalf("DialTunnel: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// freezer is a TCP proxy that can stop forwarding without closing
// anything, like a firewall that starts dropping a connection's packets.
type freezer struct {
	addr   string
	frozen chan struct{}
	once   sync.Once
}

func newFreezer(t *testing.T, to string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fz := &freezer{addr: ln.Addr().String(), frozen: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			go fz.pipe(up, c)
			go fz.pipe(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return fz
}

// pipe copies src to dst until the freezer freezes, then holds the bytes.
func (fz *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-fz.frozen:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (fz *freezer) freeze() { fz.once.Do(func() { close(fz.frozen) }) }
