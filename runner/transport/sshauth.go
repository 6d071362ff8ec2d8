package transport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// auth holds the client credentials of a JumpDialer: the identity file's
// key and the ssh-agent, opened once and shared by every connection.
type auth struct {
	methods goph.Auth
	agent   io.Closer // the agent socket, nil without an agent
	desc    string    // what was tried, for "unable to authenticate" errors
}

func (a *auth) Close() error {
	if a.agent == nil {
		return nil
	}
	return a.agent.Close()
}

// newAuth loads the identity file and connects to the agent named by
// agentSock ($SSH_AUTH_SOCK). Either may be missing as long as the other
// yields a key; an encrypted identity is left to the agent, since fwpush
// runs unattended (cron) and never prompts for a passphrase.
func newAuth(identity, agentSock string, log *slog.Logger) (*auth, error) {
	a := &auth{}
	var descs []string

	var fileSigner ssh.Signer
	// fileProblem says why the identity file yields no key.
	fileProblem := errors.New("no identity file set")
	if identity != "" {
		fileProblem = nil
		path, err := expandHome(identity)
		if err != nil {
			return nil, fmt.Errorf("identity %s: %w", identity, err)
		}
		pem, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fileProblem = fmt.Errorf("identity %s does not exist", path)
		case err != nil:
			return nil, fmt.Errorf("read identity: %w", err)
		default:
			fileSigner, err = ssh.ParsePrivateKey(pem)
			var pm *ssh.PassphraseMissingError
			switch {
			case errors.As(err, &pm):
				fileProblem = fmt.Errorf("identity %s is protected by a passphrase: load it into ssh-agent (ssh-add %s)", path, path)
			case err != nil:
				return nil, fmt.Errorf("parse identity %s: %w", path, err)
			default:
				a.methods = append(a.methods, ssh.PublicKeys(fileSigner))
				descs = append(descs, "identity "+path)
			}
		}
	}

	if agentSock == "" {
		if fileSigner == nil {
			return nil, fmt.Errorf("no SSH key: %w, and no ssh-agent (SSH_AUTH_SOCK is not set)", fileProblem)
		}
		a.desc = strings.Join(descs, ", ")
		return a, nil
	}

	conn, err := net.Dial("unix", agentSock)
	if err != nil {
		if fileSigner == nil {
			return nil, fmt.Errorf("no SSH key: %w, and ssh-agent at %s: %w", fileProblem, agentSock, err)
		}
		log.Warn("ssh-agent unreachable, using the identity file only", "agent", agentSock, "err", err)
		a.desc = strings.Join(descs, ", ")
		return a, nil
	}
	client := agent.NewClient(conn)
	keys, err := client.List()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh-agent at %s: list keys: %w", agentSock, err)
	}
	if len(keys) == 0 && fileSigner == nil {
		conn.Close()
		return nil, fmt.Errorf("no SSH key: %w, and ssh-agent at %s holds no keys", fileProblem, agentSock)
	}
	if fileSigner == nil {
		log.Debug("identity file not used, relying on ssh-agent", "reason", fileProblem)
	}
	a.agent = conn
	a.methods = append(a.methods, ssh.PublicKeysCallback(client.Signers))
	descs = append(descs, fmt.Sprintf("ssh-agent (%d keys)", len(keys)))
	a.desc = strings.Join(descs, ", ")
	return a, nil
}

// expandHome expands a leading "~/" (or a lone "~"), as the inventory's
// defaults are written that way.
func expandHome(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand ~: %w", err)
	}
	return filepath.Join(home, path[1:]), nil
}
