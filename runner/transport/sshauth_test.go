package transport

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// startAgent serves an in-memory ssh-agent holding keys on a unix socket
// and returns the socket's path.
func startAgent(t *testing.T, keys ...ssh.Signer) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		priv, ok := privateKeys.Load(k)
		if !ok {
			t.Fatal("startAgent: key was not made by a test helper")
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
	}
	// A short path: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
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
			go func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	return sock
}

func TestNewAuth(t *testing.T) {
	dir := t.TempDir()
	plain, _ := writeIdentity(t, dir, "")
	encDir := filepath.Join(dir, "enc")
	if err := os.Mkdir(encDir, 0o700); err != nil {
		t.Fatal(err)
	}
	encrypted, encKey := writeIdentity(t, encDir, "secret")
	missing := filepath.Join(dir, "missing")
	withKey := startAgent(t, encKey)
	empty := startAgent(t)

	tests := []struct {
		name     string
		identity string
		agent    string
		wantErr  []string // substrings; nil means success
		wantDesc string
	}{
		{name: "identity only", identity: plain, wantDesc: "identity " + plain},
		{name: "identity and agent", identity: plain, agent: withKey, wantDesc: "identity " + plain + ", ssh-agent (1 keys)"},
		{name: "missing identity, agent", identity: missing, agent: withKey, wantDesc: "ssh-agent (1 keys)"},
		{name: "encrypted identity, agent", identity: encrypted, agent: withKey, wantDesc: "ssh-agent (1 keys)"},
		{name: "no identity set, agent", agent: withKey, wantDesc: "ssh-agent (1 keys)"},
		{name: "missing identity, no agent", identity: missing, wantErr: []string{"no SSH key", missing, "does not exist", "SSH_AUTH_SOCK is not set"}},
		{name: "encrypted identity, no agent", identity: encrypted, wantErr: []string{"passphrase", "ssh-add " + encrypted}},
		{name: "missing identity, empty agent", identity: missing, agent: empty, wantErr: []string{missing, "holds no keys"}},
		{name: "missing identity, dead agent", identity: missing, agent: filepath.Join(dir, "no-agent"), wantErr: []string{missing, "ssh-agent at"}},
		{name: "identity, dead agent", identity: plain, agent: filepath.Join(dir, "no-agent"), wantDesc: "identity " + plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ids []string
			if tt.identity != "" {
				ids = []string{tt.identity}
			}
			a, err := newAuth(ids, tt.agent, slog.New(slog.DiscardHandler))
			if tt.wantErr != nil {
				if err == nil {
					a.Close()
					t.Fatal("newAuth succeeded")
				}
				for _, part := range tt.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not mention %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.desc != tt.wantDesc {
				t.Errorf("desc = %q, want %q", a.desc, tt.wantDesc)
			}
		})
	}
}

func TestExpandHome(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	for in, want := range map[string]string{
		"~/.ssh/id_ed25519": "/home/op/.ssh/id_ed25519",
		"~":                 "/home/op",
		"/etc/fwpush/key":   "/etc/fwpush/key",
		"~other/key":        "~other/key",
		"keys/id":           "keys/id",
	} {
		got, err := expandHome(in)
		if err != nil || got != want {
			t.Errorf("expandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
