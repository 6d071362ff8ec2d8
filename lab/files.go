package lab

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// newKey generates an ed25519 key and returns its private key in OpenSSH
// format and its public key as an authorized_keys line.
func newKey(comment string) (private []byte, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	line := bytes.TrimSpace(ssh.MarshalAuthorizedKey(sshPub))
	return pem.EncodeToMemory(block), append(line, []byte(" "+comment+"\n")...), nil
}

// writeClient writes the lab's own files: the client key, the state record
// and the ssh_config. known_hosts is written once the host keys exist.
func (l *Lab) writeClient() (authorized []byte, err error) {
	if err := os.MkdirAll(filepath.Join(l.Dir, "hosts"), 0o700); err != nil {
		return nil, err
	}
	priv, pub, err := newKey("fwpush-lab-" + l.Name)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	if err := os.WriteFile(l.Identity, priv, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.Identity+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	state, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(l.Dir, stateFile), append(state, '\n'), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.SSHConfig, l.sshConfig(), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// writeHost writes one host's directory: its host key and sshd_config. It
// returns the host's known_hosts line.
func (l *Lab) writeHost(n *Node) (knownHosts string, err error) {
	dir := l.hostDir(n)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	priv, pub, err := newKey("root@" + n.Name)
	if err != nil {
		return "", fmt.Errorf("host key: %w", err)
	}
	key := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(key, priv, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(key+".pub", pub, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), l.sshdConfig(n), 0o644); err != nil {
		return "", err
	}
	fields := strings.Fields(string(pub))
	return strings.Join(knownNames(n), ",") + " " + fields[0] + " " + fields[1] + "\n", nil
}

// knownNames are the names a host's key is known under: every address the
// inventory gives it, as OpenSSH writes them ("[ip]:port" off port 22).
func knownNames(n *Node) []string {
	var out []string
	for _, lk := range []*Link{n.Public, n.Private} {
		if lk == nil {
			continue
		}
		for _, ip := range []netip.Addr{lk.IP, lk.IP6} {
			if !ip.IsValid() {
				continue
			}
			if n.Port == 22 {
				out = append(out, ip.String())
			} else {
				out = append(out, "["+ip.String()+"]:"+strconv.Itoa(n.Port))
			}
		}
	}
	return out
}

// sshdConfig is a stock server's configuration reduced to what the lab
// needs: key-only logins (root's too unless turned off), the sftp
// subsystem, TCP forwarding (the tunnel host is jumped through), everything
// it writes inside the host's directory.
func (l *Lab) sshdConfig(n *Node) []byte {
	dir := l.hostDir(n)
	var b strings.Builder
	fmt.Fprintf(&b, "# fwpush lab %s, host %s\n", l.Name, n.Name)
	fmt.Fprintf(&b, "Port %d\n", n.Port)
	fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(dir, "ssh_host_ed25519_key"))
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(dir, "sshd.pid"))
	if n.Options.NoRootLogin {
		b.WriteString("PermitRootLogin no\n")
	} else {
		b.WriteString("PermitRootLogin prohibit-password\n")
	}
	b.WriteString(`PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp internal-sftp
`)
	return []byte(b.String())
}

// sshConfig is an ssh_config for OpenSSH clients in the controller
// (ssh -F FILE): the lab's key and known_hosts, strict checking, and each
// host's user and port under its addresses. A machine running many labs
// at once (a test suite) may take seconds to answer: ConnectTimeout, which
// covers the banner too, gives it 15.
func (l *Lab) sshConfig() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# fwpush lab %s: ssh -F %s [-J TUNNEL_IP] ADDRESS\n", l.Name, l.SSHConfig)
	for _, n := range l.Hosts {
		var addrs []string
		for _, lk := range []*Link{n.Public, n.Private} {
			if lk != nil {
				for _, ip := range []netip.Addr{lk.IP, lk.IP6} {
					if ip.IsValid() {
						addrs = append(addrs, ip.String())
					}
				}
			}
		}
		fmt.Fprintf(&b, "Host %s\n  User %s\n  Port %d\n", strings.Join(addrs, " "), n.User, n.Port)
	}
	fmt.Fprintf(&b, `Host *
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  BatchMode yes
  ConnectTimeout 15
`, l.Identity, l.KnownHosts)
	return []byte(b.String())
}

// hostPort joins an address and a port as Dial wants them.
func hostPort(ip netip.Addr, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}
