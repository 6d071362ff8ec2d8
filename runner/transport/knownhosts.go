package transport

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyProblem says what is wrong with a host key.
type HostKeyProblem int

// The ways a host key can fail verification.
const (
	// HostKeyUnknown: known_hosts has no key for the address.
	HostKeyUnknown HostKeyProblem = iota + 1
	// HostKeyChanged: known_hosts holds other keys for the address. This is
	// what a man-in-the-middle looks like, so it is never accepted.
	HostKeyChanged
	// HostKeyRevoked: the key is marked @revoked in known_hosts.
	HostKeyRevoked
)

// String returns the problem as error messages and logs name it.
func (p HostKeyProblem) String() string {
	switch p {
	case HostKeyUnknown:
		return "unknown"
	case HostKeyChanged:
		return "changed"
	case HostKeyRevoked:
		return "revoked"
	}
	return fmt.Sprintf("HostKeyProblem(%d)", int(p))
}

// HostKeyError is returned when a host's key fails verification against
// known_hosts. It names the host and the offered key's fingerprint so an
// operator can compare it with the one the host prints
// (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).
type HostKeyError struct {
	Host        string // inventory name
	Addr        string // address as known_hosts names it: "10.0.0.5" or "[10.0.0.5]:2222"
	Problem     HostKeyProblem
	KeyType     string // type of the offered key, e.g. "ssh-ed25519"
	Fingerprint string // SHA256 fingerprint of the offered key, "SHA256:..."
	KnownHosts  string // the known_hosts file consulted
	// Known lists, for a changed key, where known_hosts holds the keys it
	// expected ("file:line: type SHA256:...").
	Known []string
}

// Error says what an operator must check, and how to clear a key that
// changed on purpose.
func (e *HostKeyError) Error() string {
	switch e.Problem {
	case HostKeyChanged:
		return fmt.Sprintf("host %s: host key for %s has CHANGED (possible man-in-the-middle): offered %s %s, but %s; not connecting, and --accept-new never replaces a key: if the change is expected, remove the old entry (ssh-keygen -R %s -f %s)",
			e.Host, e.Addr, e.KeyType, e.Fingerprint, knownList(e.Known), e.Addr, e.KnownHosts)
	case HostKeyRevoked:
		return fmt.Sprintf("host %s: host key for %s is revoked in %s: offered %s %s",
			e.Host, e.Addr, e.KnownHosts, e.KeyType, e.Fingerprint)
	default:
		return fmt.Sprintf("host %s: host key for %s is unknown: offered %s %s, not in %s; verify the fingerprint on the host and add it, or trust and record it with fwpush --accept-new",
			e.Host, e.Addr, e.KeyType, e.Fingerprint, e.KnownHosts)
	}
}

func knownList(known []string) string {
	if len(known) == 0 {
		return "known_hosts holds another key"
	}
	return "known_hosts holds " + strings.Join(known, "; ")
}

// knownHosts verifies host keys against known_hosts files (the user's,
// then the system's) and, with acceptNew, records keys of hosts none of
// them knows in the first. It is shared by every connection of a
// JumpDialer, so appends are serialised and the parsed database is
// swapped under a lock: a key recorded by one connection is seen by the
// next.
type knownHosts struct {
	path      string   // the file new keys are recorded in
	more      []string // files read too, never written
	hash      bool     // record hashed addresses
	acceptNew bool
	log       *slog.Logger

	mu    sync.RWMutex
	check ssh.HostKeyCallback
	read  []string // the files that exist, as last loaded
	// certLines are the lines of @cert-authority entries, by file: the
	// knownhosts package reports matching entries without saying whether
	// they are CA keys, and a CA key means the host offers a certificate.
	certLines map[string]map[int]bool
	// hashed is set when path already holds hashed addresses.
	hashed bool
}

func newKnownHosts(path string, more []string, hash, acceptNew bool, log *slog.Logger) (*knownHosts, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &knownHosts{path: path, more: more, hash: hash, acceptNew: acceptNew, log: log}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// load (re)parses the files. A missing file is an empty one: with none at
// all every host is unknown, which accept-new can fix.
func (k *knownHosts) load() error {
	k.read, k.certLines, k.hashed = nil, map[string]map[int]bool{}, false
	for _, path := range append([]string{k.path}, k.more...) {
		if slices.Contains(k.read, path) {
			continue
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read known_hosts: %w", err)
		}
		k.read = append(k.read, path)
		lines := map[int]bool{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimLeft(sc.Text(), " \t")
			if strings.HasPrefix(line, "@cert-authority") {
				lines[n] = true
			}
			if path == k.path && strings.HasPrefix(line, "|1|") {
				k.hashed = true
			}
		}
		k.certLines[path] = lines
	}
	check, err := knownhosts.New(k.read...)
	if err != nil {
		return fmt.Errorf("parse known_hosts: %w", err)
	}
	k.check = check
	return nil
}

// files names the files keys are looked up in, for messages.
func (k *knownHosts) files() string {
	if len(k.read) == 0 {
		return k.path
	}
	return strings.Join(k.read, " and ")
}

// probeKey is a key nobody holds. Checking it against the database makes
// knownhosts list every entry that matches an address (hashed names,
// wildcards and negations included), so the algorithms we pin are derived
// by exactly the matching rules that later verify the key.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		panic(err)
	}
	return k
}()

// known returns the entries known_hosts holds for addr (host:port).
func (k *knownHosts) known(addr string) (keys []knownhosts.KnownKey, certLines map[string]map[int]bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var ke *knownhosts.KeyError
	if err := k.check(addr, tcpAddr(addr), probeKey); errors.As(err, &ke) {
		return ke.Want, k.certLines
	}
	return nil, nil
}

// algorithms returns the host key algorithms to offer when connecting to
// addr. Without pinning, a server with several host keys picks by our
// preference order, not by what we know: a host recorded with its ecdsa
// key would then offer ed25519 and look "changed". An unknown host gets
// plain (non-certificate) algorithms, so accept-new records a key, not a
// certificate nobody can verify.
func (k *knownHosts) algorithms(addr string) (algos []string, pinned bool) {
	keys, certLines := k.known(addr)
	if len(keys) == 0 {
		return slices.Clone(unknownHostAlgorithms), false
	}
	for _, kk := range keys {
		algos = append(algos, algorithmsFor(kk.Key.Type(), certLines[kk.Filename][kk.Line])...)
	}
	return orderAlgorithms(algos), true
}

// unknownHostAlgorithms is what we offer a host known_hosts says nothing
// about, in OpenSSH's order of preference.
var unknownHostAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// algorithmsFor maps a key type as known_hosts writes it to the host key
// algorithms that prove possession of such a key. An RSA key signs with
// three algorithms; a CA key means the host presents a certificate.
func algorithmsFor(keyType string, cert bool) []string {
	if cert {
		switch keyType {
		case ssh.KeyAlgoRSA:
			return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
		case ssh.KeyAlgoED25519:
			return []string{ssh.CertAlgoED25519v01}
		case ssh.KeyAlgoECDSA256:
			return []string{ssh.CertAlgoECDSA256v01}
		case ssh.KeyAlgoECDSA384:
			return []string{ssh.CertAlgoECDSA384v01}
		case ssh.KeyAlgoECDSA521:
			return []string{ssh.CertAlgoECDSA521v01}
		case ssh.KeyAlgoSKED25519:
			return []string{ssh.CertAlgoSKED25519v01}
		case ssh.KeyAlgoSKECDSA256:
			return []string{ssh.CertAlgoSKECDSA256v01}
		}
		return nil
	}
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// algorithmPreference orders pinned algorithms: certificates first (as
// OpenSSH does), then plain keys, strongest and fastest first. Anything not
// listed keeps its known_hosts order after these.
var algorithmPreference = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoSKED25519v01, ssh.CertAlgoSKECDSA256v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01,
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

func orderAlgorithms(algos []string) []string {
	var out []string
	for _, a := range algos {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	rank := func(a string) int {
		if i := slices.Index(algorithmPreference, a); i >= 0 {
			return i
		}
		return len(algorithmPreference)
	}
	slices.SortStableFunc(out, func(a, b string) int { return rank(a) - rank(b) })
	return out
}

// callback returns the host key callback for one host. It checks the key
// against addr, the address the inventory names, and ignores the address
// the SSH library passes: through the tunnel that is only the channel's
// view of the target, not a name anyone recorded.
func (k *knownHosts) callback(host, addr string) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		// classify reads what load writes when another connection
		// records a key: both under the lock.
		k.mu.RLock()
		err := k.check(addr, tcpAddr(addr), key)
		var hk *HostKeyError
		if err != nil {
			hk = k.classify(host, addr, key, err)
		}
		k.mu.RUnlock()
		if err == nil {
			return nil
		}
		if hk != nil {
			if hk.Problem == HostKeyUnknown && k.acceptNew {
				return k.add(host, addr, key)
			}
			return hk
		}
		return fmt.Errorf("host %s: verify host key for %s: %w", host, knownhosts.Normalize(addr), err)
	}
}

// classify turns a knownhosts error into a HostKeyError, or nil if err is
// something else (such as a certificate signed by an unknown authority).
// The caller holds k.mu.
func (k *knownHosts) classify(host, addr string, key ssh.PublicKey, err error) *HostKeyError {
	hk := &HostKeyError{
		Host:        host,
		Addr:        knownhosts.Normalize(addr),
		KeyType:     key.Type(),
		Fingerprint: ssh.FingerprintSHA256(key),
		KnownHosts:  k.files(),
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		hk.Problem = HostKeyRevoked
	case errors.As(err, &ke) && len(ke.Want) == 0:
		hk.Problem = HostKeyUnknown
	case errors.As(err, &ke):
		hk.Problem = HostKeyChanged
		hk.KnownHosts = ke.Want[0].Filename // where to remove it from
		for _, w := range ke.Want {
			hk.Known = append(hk.Known, fmt.Sprintf("%s:%d: %s %s", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
		}
	default:
		return nil
	}
	return hk
}

// add records key for addr, as OpenSSH's accept-new does. It checks again
// under the write lock: another connection to the same host may have
// recorded a key meanwhile, and then this one must match it.
func (k *knownHosts) add(host, addr string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.check(addr, tcpAddr(addr), key)
	if err == nil {
		return nil
	}
	hk := k.classify(host, addr, key, err)
	if hk == nil {
		return fmt.Errorf("host %s: verify host key for %s: %w", host, knownhosts.Normalize(addr), err)
	}
	if hk.Problem != HostKeyUnknown {
		return hk
	}
	entry := knownhosts.Normalize(addr)
	if k.hash || k.hashed {
		entry = knownhosts.HashHostname(entry)
	}
	if err := appendLine(k.path, knownhosts.Line([]string{entry}, key)); err != nil {
		return fmt.Errorf("host %s: record host key for %s: %w", host, hk.Addr, err)
	}
	if err := k.load(); err != nil {
		return fmt.Errorf("host %s: record host key for %s: %w", host, hk.Addr, err)
	}
	k.log.Warn("recorded new host key", "host", host, "addr", hk.Addr, "key", key.Type(), "fingerprint", hk.Fingerprint, "known_hosts", k.path)
	return nil
}

// appendLine appends line to a known_hosts file, creating it (and its
// directory) if needed, and starting on a fresh line if the file does not
// end with one, so a hand-edited file is never corrupted.
func appendLine(path, line string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err != nil {
			f.Close()
			return err
		}
		if last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tcpAddr is a net.Addr for a host:port string. knownhosts insists on a
// parsable remote address even when it is told which address to check.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }
