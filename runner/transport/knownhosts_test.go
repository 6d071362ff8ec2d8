package transport

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestAlgorithmsFromKnownHosts(t *testing.T) {
	ed := ed25519Signer(t).PublicKey()
	ec := ecdsaSigner(t).PublicKey()
	rs := rsaSigner(t).PublicKey()
	line := func(pattern string, k ssh.PublicKey) string {
		return pattern + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	}
	tests := []struct {
		name  string
		lines []string
		addr  string
		want  []string
	}{{
		name:  "unknown host gets plain algorithms only",
		lines: []string{line("10.0.0.9", ed)},
		addr:  "10.0.0.5:22",
		want:  unknownHostAlgorithms,
	}, {
		name:  "ecdsa only",
		lines: []string{line("10.0.0.5", ec), line("10.0.0.6", ed)},
		addr:  "10.0.0.5:22",
		want:  []string{ssh.KeyAlgoECDSA256},
	}, {
		name:  "rsa signs three ways",
		lines: []string{line("10.0.0.5", rs)},
		addr:  "10.0.0.5:22",
		want:  []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA},
	}, {
		name:  "several keys, preference order",
		lines: []string{line("10.0.0.5", rs), line("10.0.0.5,10.0.0.6", ec), line("10.0.0.5", ed)},
		addr:  "10.0.0.5:22",
		want:  []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA},
	}, {
		name:  "non-default port only matches the bracketed form",
		lines: []string{line("10.0.0.5", ed), line("[10.0.0.5]:2222", ec)},
		addr:  "10.0.0.5:2222",
		want:  []string{ssh.KeyAlgoECDSA256},
	}, {
		name:  "hashed host name",
		lines: []string{line(hashed("10.0.0.5"), ec), line(hashed("[10.0.0.5]:2222"), rs)},
		addr:  "10.0.0.5:22",
		want:  []string{ssh.KeyAlgoECDSA256},
	}, {
		name:  "hashed host name with port",
		lines: []string{line(hashed("10.0.0.5"), ec), line(hashed("[10.0.0.5]:2222"), ed)},
		addr:  "10.0.0.5:2222",
		want:  []string{ssh.KeyAlgoED25519},
	}, {
		name:  "wildcard and negation",
		lines: []string{line("10.0.0.*,!10.0.0.6", ec)},
		addr:  "10.0.0.6:22",
		want:  unknownHostAlgorithms,
	}, {
		name:  "certificate authority",
		lines: []string{"@cert-authority " + line("10.0.0.*", ed), line("10.0.0.5", ec)},
		addr:  "10.0.0.5:22",
		want:  []string{ssh.CertAlgoED25519v01, ssh.KeyAlgoECDSA256},
	}, {
		name:  "ipv6",
		lines: []string{line("fd00::5", ed)},
		addr:  "[fd00::5]:22",
		want:  []string{ssh.KeyAlgoED25519},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, path, tt.lines...)
			k, err := newKnownHosts(path, nil, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, pinned := k.algorithms(tt.addr)
			if pinned != !slices.Equal(tt.want, unknownHostAlgorithms) {
				t.Errorf("algorithms(%s) pinned = %v", tt.addr, pinned)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("algorithms(%s) (-want +got):\n%s", tt.addr, diff)
			}
		})
	}
}

// hashed is a host pattern as HashKnownHosts writes it.
func hashed(host string) string {
	return knownhosts.HashHostname(host)
}

func TestAppendLineStartsOnANewLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte("# hand-edited, no final newline"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := appendLine(path, "10.0.0.5 ssh-ed25519 AAAA"); err != nil {
		t.Fatal(err)
	}
	if err := appendLine(path, "10.0.0.6 ssh-ed25519 BBBB"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# hand-edited, no final newline\n10.0.0.5 ssh-ed25519 AAAA\n10.0.0.6 ssh-ed25519 BBBB\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("known_hosts (-want +got):\n%s", diff)
	}
}

// The callback classifies what it finds against the address it was made
// for, whatever address the SSH library passes it.
func TestKnownHostsCallback(t *testing.T) {
	known := ed25519Signer(t).PublicKey()
	other := ed25519Signer(t).PublicKey()
	revoked := ecdsaSigner(t).PublicKey()
	lines := []string{
		knownLine("10.0.0.5:22", known),
		"@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(revoked))),
	}
	tests := []struct {
		name      string
		addr      string
		key       ssh.PublicKey
		acceptNew bool
		want      HostKeyProblem // 0: accepted
	}{
		{name: "known", addr: "10.0.0.5:22", key: known},
		{name: "changed", addr: "10.0.0.5:22", key: other, want: HostKeyChanged},
		{name: "changed, accept-new", addr: "10.0.0.5:22", key: other, acceptNew: true, want: HostKeyChanged},
		{name: "other port is another host", addr: "10.0.0.5:2222", key: known, want: HostKeyUnknown},
		{name: "unknown", addr: "10.0.0.6:22", key: known, want: HostKeyUnknown},
		{name: "unknown, accept-new", addr: "10.0.0.6:22", key: known, acceptNew: true},
		{name: "revoked", addr: "10.0.0.5:22", key: revoked, want: HostKeyRevoked},
		{name: "revoked, accept-new", addr: "10.0.0.7:22", key: revoked, acceptNew: true, want: HostKeyRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, path, lines...)
			k, err := newKnownHosts(path, nil, false, tt.acceptNew, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The library would pass the remote address of a channel
			// through the tunnel; it must play no part.
			err = k.callback("h", tt.addr)("127.0.0.1:40000", tcpAddr("127.0.0.1:40000"), tt.key)
			var hk *HostKeyError
			switch {
			case tt.want == 0 && err != nil:
				t.Fatalf("callback: %v", err)
			case tt.want != 0 && !errors.As(err, &hk):
				t.Fatalf("callback error = %v, want %v host key", err, tt.want)
			case tt.want != 0 && hk.Problem != tt.want:
				t.Fatalf("callback error = %v, want %v host key", err, tt.want)
			}
			if tt.want != 0 && !strings.Contains(err.Error(), ssh.FingerprintSHA256(tt.key)) {
				t.Errorf("error %q does not name the offered key's fingerprint", err)
			}
		})
	}
}

func TestAcceptNewOnceUnderConcurrency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	k, err := newKnownHosts(path, nil, false, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519Signer(t).PublicKey()
	cb := k.callback("app-1", "10.0.0.5:22")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := cb("", tcpAddr("10.0.0.5:22"), key); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	data, _ := os.ReadFile(path)
	if diff := cmp.Diff(knownLine("10.0.0.5:22", key)+"\n", string(data)); diff != "" {
		t.Errorf("known_hosts (-want +got):\n%s", diff)
	}
	// A different key for the host just recorded is a change.
	var hk *HostKeyError
	if err := cb("", tcpAddr("10.0.0.5:22"), ed25519Signer(t).PublicKey()); !errors.As(err, &hk) || hk.Problem != HostKeyChanged {
		t.Errorf("second key for a recorded host: %v, want changed", err)
	}
}

func TestKnownHostsUnparsable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, path, "this is not a known_hosts line")
	if _, err := newKnownHosts(path, nil, false, false, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("newKnownHosts = %v, want an error naming %s", err, path)
	}
}

// TestKnownHostsFiles: keys are found in the system's file too, and
// accept-new records hashed addresses in a file that holds hashed ones, or
// when HashKnownHosts says so, and plain ones otherwise.
func TestKnownHostsFiles(t *testing.T) {
	dir := t.TempDir()
	tunnelKey, dbKey := ed25519Signer(t).PublicKey(), ed25519Signer(t).PublicKey()
	system := filepath.Join(dir, "ssh_known_hosts")
	writeFile(t, system, knownLine("203.0.113.10:22", tunnelKey))
	hashedLine := knownhosts.Line([]string{knownhosts.HashHostname("198.51.100.9")}, ed25519Signer(t).PublicKey())

	tests := []struct {
		name       string
		user       []string // the user's file, before
		hash       bool
		wantHashed bool
	}{
		{"a plain file", []string{knownLine("198.51.100.8:22", ed25519Signer(t).PublicKey())}, false, false},
		{"a hashed file", []string{hashedLine}, false, true},
		{"HashKnownHosts yes", nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			if tt.user != nil {
				writeFile(t, path, tt.user...)
			}
			k, err := newKnownHosts(path, []string{system, filepath.Join(dir, "missing")}, tt.hash, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.callback("tunnel-1", "203.0.113.10:22")("", tcpAddr("203.0.113.10:22"), tunnelKey); err != nil {
				t.Errorf("the system file's key: %v", err)
			}
			var hk *HostKeyError
			if err := k.callback("tunnel-1", "203.0.113.10:22")("", tcpAddr("203.0.113.10:22"), dbKey); !errors.As(err, &hk) || hk.Problem != HostKeyChanged || hk.KnownHosts != system {
				t.Errorf("another key for the tunnel: %v, want changed, in %s", err, system)
			}
			if err := k.callback("db-1", "198.18.0.31:2222")("", tcpAddr("198.18.0.31:2222"), dbKey); err != nil {
				t.Fatalf("accept-new: %v", err)
			}
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			last := lines[len(lines)-1]
			if got := strings.HasPrefix(last, "|1|"); got != tt.wantHashed || strings.Contains(last, "198.18.0.31") == tt.wantHashed {
				t.Errorf("recorded %q, want hashed %v", last, tt.wantHashed)
			}
			// What was recorded is found again, by a fresh reader too.
			k2, err := newKnownHosts(path, nil, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := k2.callback("db-1", "198.18.0.31:2222")("", tcpAddr("198.18.0.31:2222"), dbKey); err != nil {
				t.Errorf("the recorded key: %v", err)
			}
		})
	}
}
