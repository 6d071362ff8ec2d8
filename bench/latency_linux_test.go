package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab/labtest"
)

// TestSlowLink proves the REDIRECT path on the real kernel, in a network
// namespace of the test's own: a connection a program of the namespace
// makes to the target goes through the relay (and only once: the relay's
// own, marked connection is not redirected again), pays the round-trip
// time, and once the link is closed goes straight to the target again.
func TestSlowLink(t *testing.T) {
	labtest.Require(t)
	ns := fmt.Sprintf("fwp-bl%x", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(sbin("ip"), args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command(sbin("ip"), "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "addr", "add", "198.51.100.10/32", "dev", "lo")
	path := filepath.Join("/run/netns", ns)
	target := netip.MustParseAddrPort("198.51.100.10:2222")

	// The target greets each connection, as sshd does, then echoes.
	var srv net.Listener
	if err := inNetns(path, func() (err error) {
		srv, err = net.Listen("tcp", target.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := c.Write([]byte("hello\n")); err == nil {
					_, _ = io.Copy(c, c)
				}
			}()
		}
	}()
	// exchange connects from the namespace, as any of its programs would,
	// reads the greeting, and echoes one byte; it says how long each took.
	exchange := func() (greeting, echo time.Duration) {
		t.Helper()
		var c net.Conn
		start := time.Now()
		if err := inNetns(path, func() (err error) {
			c, err = net.DialTimeout("tcp", target.String(), 10*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello\n" {
			t.Fatalf("greeting %q: %v", buf, err)
		}
		greeting = time.Since(start)
		start = time.Now()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != 'x' {
			t.Fatalf("echo %q: %v", buf[:1], err)
		}
		return greeting, time.Since(start)
	}

	const rtt = 60 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	link, err := startSlowLink(ctx, path, target, rtt)
	if err != nil {
		t.Fatal(err)
	}
	greeting, echo := exchange()
	if greeting < 2*rtt || echo < rtt {
		t.Errorf("through the relay: greeting after %v, echo after %v; want at least %v and %v", greeting, echo, 2*rtt, rtt)
	}
	if st := link.stats(); st.Conns != 1 || st.Turns != 1 || st.Up != 1 || st.Down != 7 {
		t.Errorf("relay stats %+v, want 1 connection, 1 turn, 1 byte up and 7 down", st)
	}
	if err := link.close(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sbin("nsenter"), "--net="+path, "--", sbin("iptables"), "-w", "-t", "nat", "-S", "OUTPUT").CombinedOutput()
	if err != nil || strings.Contains(string(out), "REDIRECT") {
		t.Errorf("the rule is left after close (%v):\n%s", err, out)
	}
	exchange()
	if st := link.stats(); st.Conns != 1 {
		t.Errorf("a connection went through the relay after close: %+v", st)
	}
}
