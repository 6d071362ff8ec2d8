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
	"slices"
	"strings"
	"sync"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// auth holds the client credentials of a JumpDialer: the keys of identity
// files, each loaded once and shared by every connection that names it,
// and the ssh-agent.
type auth struct {
	log        *slog.Logger
	agentKeys  func() ([]ssh.Signer, error) // nil without an agent
	agent      io.Closer                    // the agent socket, nil without an agent
	agentDesc  string                       // "ssh-agent (2 keys)"
	agentEmpty bool                         // the agent holds no keys

	mu   sync.Mutex
	keys map[string]fileKey // by identity as given

	// methods and desc are those of the identities newAuth was given.
	methods goph.Auth
	desc    string // what was tried, for "unable to authenticate" errors
}

// fileKey is an identity file's key, or why it yields none.
type fileKey struct {
	path    string // expanded
	signer  ssh.Signer
	problem error // missing, or protected by a passphrase: the agent may still help
	err     error // unreadable or unparsable: an error in its own right
}

func (a *auth) Close() error {
	if a.agent == nil {
		return nil
	}
	return a.agent.Close()
}

// newAuth connects to the agent named by agentSock ($SSH_AUTH_SOCK) and
// loads the identity files. Either may yield nothing as long as the other
// yields a key; an encrypted identity is left to the agent, since fwpush
// runs unattended (cron) and never prompts for a passphrase.
func newAuth(identities []string, agentSock string, log *slog.Logger) (*auth, error) {
	a := &auth{log: log, keys: map[string]fileKey{}}
	// agentProblem says why the agent yields no key.
	var agentProblem string
	if agentSock == "" {
		agentProblem = "no ssh-agent (SSH_AUTH_SOCK is not set)"
	} else if conn, err := net.Dial("unix", agentSock); err != nil {
		agentProblem = fmt.Sprintf("ssh-agent at %s: %v", agentSock, err)
	} else {
		client := agent.NewClient(conn)
		keys, err := client.List()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("ssh-agent at %s: list keys: %w", agentSock, err)
		}
		a.agent, a.agentKeys = conn, client.Signers
		a.agentDesc = fmt.Sprintf("ssh-agent (%d keys)", len(keys))
		if len(keys) == 0 {
			a.agentEmpty = true
			agentProblem = fmt.Sprintf("ssh-agent at %s holds no keys", agentSock)
		}
	}
	methods, desc, problem, err := a.methodsFor(identities)
	if err != nil {
		a.Close()
		return nil, err
	}
	if problem != nil && (a.agentKeys == nil || a.agentEmpty) {
		a.Close()
		return nil, fmt.Errorf("no SSH key: %w, and %s", problem, agentProblem)
	}
	if problem != nil {
		log.Debug("identity file not used, relying on ssh-agent", "reason", problem)
	} else if agentSock != "" && a.agentKeys == nil {
		log.Warn("ssh-agent unreachable, using the identity file only", "agent", agentSock)
	}
	a.methods, a.desc = methods, desc
	return a, nil
}

// load returns an identity file's key, reading it the first time.
func (a *auth) load(identity string) fileKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k, ok := a.keys[identity]; ok {
		return k
	}
	k := readKey(identity)
	a.keys[identity] = k
	return k
}

func readKey(identity string) fileKey {
	path, err := expandHome(identity)
	if err != nil {
		return fileKey{err: fmt.Errorf("identity %s: %w", identity, err)}
	}
	k := fileKey{path: path}
	pem, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k.problem = fmt.Errorf("identity %s does not exist", path)
		return k
	case err != nil:
		k.err = fmt.Errorf("read identity: %w", err)
		return k
	}
	k.signer, err = ssh.ParsePrivateKey(pem)
	var pm *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pm):
		k.problem = fmt.Errorf("identity %s is protected by a passphrase: load it into ssh-agent (ssh-add %s)", path, path)
	case err != nil:
		k.err = fmt.Errorf("parse identity %s: %w", path, err)
	}
	return k
}

// methodsFor returns how to authenticate with identities (files) and the
// agent: one public-key method offering every key in turn, the files'
// first (the SSH client tries each method once, so a second public-key
// method would never be tried after the first failed). problem says why
// no file yielded a key; err is a file that could not be read or parsed.
func (a *auth) methodsFor(identities []string) (methods goph.Auth, desc string, problem, err error) {
	var signers []ssh.Signer
	var descs []string
	problem = errors.New("no identity file set")
	if len(identities) > 0 {
		problem = nil
	}
	var problems []error
	for _, id := range identities {
		k := a.load(id)
		switch {
		case k.err != nil:
			return nil, "", nil, k.err
		case k.problem != nil:
			problems = append(problems, k.problem)
		default:
			signers = append(signers, k.signer)
			descs = append(descs, "identity "+k.path)
		}
	}
	switch {
	case len(signers) > 0:
		problem = nil
	case len(problems) == 1:
		problem = problems[0]
	case len(problems) > 1:
		var msgs []string
		for _, p := range problems {
			msgs = append(msgs, p.Error())
		}
		problem = errors.New(strings.Join(msgs, "; "))
	}
	agentKeys := a.agentKeys
	if agentKeys != nil && !a.agentEmpty {
		descs = append(descs, a.agentDesc)
	}
	methods = goph.Auth{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := slices.Clone(signers)
		if agentKeys != nil {
			more, err := agentKeys()
			if err != nil && len(all) == 0 {
				return nil, err
			}
			all = append(all, more...)
		}
		return all, nil
	})}
	return methods, strings.Join(descs, ", "), problem, nil
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
