// Package xtables loads iptables-restore documents with this machine's own
// iptables-restore and ip6tables-restore, each into a network namespace of
// its own that disappears with the process, to find out before any server
// is contacted whether the kernel and iptables accept a rendered policy.
// The machine's own firewall is never touched: as root each load runs in a
// new network namespace; as another user, in a new user and network
// namespace (what `unshare -rn` makes), where the kernel allows it. The
// xtables lock that iptables-legacy takes is a file of the run's own
// (XTABLES_LOCKFILE), never /run/xtables.lock.
//
// A document is loaded for real, not with --test: iptables-nft's --test
// never reaches the kernel (a jump to a chain that does not exist passes
// it), and a throwaway namespace has nothing to lose.
package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Doc is one iptables-restore document (the filter table of a policy).
type Doc struct {
	Family int // 4: iptables-restore; 6: ip6tables-restore
	Text   []byte
}

// Rejected is a document iptables-restore refused.
type Rejected struct {
	Program string // "iptables-restore" or "ip6tables-restore"
	Line    int    // the document's line it names; 0 when it names none
	Msg     string // what it said, without its version and usage hint
}

func (e *Rejected) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Program, e.Line, e.Msg)
	}
	return e.Program + ": " + e.Msg
}

// Tester loads documents. The zero value is ready to use.
type Tester struct {
	// Timeout bounds each load; 0 means 20 seconds.
	Timeout time.Duration
	// Parallel is how many loads run at once; 0 means the number of CPUs,
	// at least 2.
	Parallel int
	// Path is where the programs are looked for; "" means $PATH and then
	// /usr/sbin, /sbin and /usr/local/sbin, where they live but where a
	// user's $PATH often does not go.
	Path string
}

// Test loads each document into a throwaway network namespace and returns
// one error per document: nil when it loaded, a *Rejected when it was
// refused. A non-nil error instead means this machine cannot test
// policies at all, and says why: no iptables, no permission to make the
// namespaces, or an iptables that refuses even a policy every server
// accepts. Documents are loaded in parallel; ctx cancels them.
func (t *Tester) Test(ctx context.Context, docs []Doc) ([]error, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	progs := map[int]string{}
	for _, d := range docs {
		if _, ok := progs[d.Family]; ok {
			continue
		}
		name := program(d.Family)
		if name == "" {
			return nil, fmt.Errorf("no iptables for IPv%d", d.Family)
		}
		path, err := t.lookPath(name)
		if err != nil {
			return nil, err
		}
		progs[d.Family] = path
	}
	dir, err := os.MkdirTemp("", "fwpush-xtables-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l := &loader{dir: dir, timeout: t.Timeout}
	if l.timeout <= 0 {
		l.timeout = 20 * time.Second
	}

	// First a policy of the kind every server takes, made of the matches
	// fwpush's templates use: if this machine refuses it, its refusals
	// say nothing about the policies.
	for family, path := range progs {
		err := l.load(ctx, path, family, -family, probes[family])
		var rej *Rejected
		switch {
		case errors.As(err, &rej):
			return nil, fmt.Errorf("%s here refuses a policy every server takes (%v): it cannot tell good policies from bad", rej.Program, rej)
		case err != nil:
			return nil, err
		}
	}

	// Documents go in batches, one iptables-restore per batch: each
	// document is a table of its own, which starts from nothing (both
	// backends flush the table and delete its chains at "*filter") and is
	// committed at its COMMIT, so the documents do not see each other.
	// The line iptables-restore names tells which one it refused; the
	// ones after it go again, in a new batch.
	parallel := cmpOr(t.Parallel, max(2, runtime.NumCPU()))
	results := make([]error, len(docs))
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, batch := range batches(docs, parallel) {
		g.Go(func() error {
			return l.batch(ctx, progs[docs[batch[0]].Family], docs, batch, results)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

// maxBatch bounds a batch, so that one slow document does not hold many
// others past the timeout.
const maxBatch = 64

// batches groups the documents by family into batches, enough of them to
// keep parallel loads busy. A document that is not one table ending in
// COMMIT goes alone: its lines could not be told from the next one's.
func batches(docs []Doc, parallel int) [][]int {
	var out [][]int
	for _, family := range []int{4, 6} {
		var idx []int
		for i, d := range docs {
			if d.Family != family {
				continue
			}
			if !oneTable(d.Text) {
				out = append(out, []int{i})
				continue
			}
			idx = append(idx, i)
		}
		size := min(maxBatch, max(1, (len(idx)+parallel-1)/parallel))
		for len(idx) > 0 {
			n := min(size, len(idx))
			out = append(out, idx[:n])
			idx = idx[n:]
		}
	}
	for i, d := range docs {
		if d.Family != 4 && d.Family != 6 {
			out = append(out, []int{i})
		}
	}
	return out
}

// oneTable tells whether a document is one table, ending in COMMIT.
func oneTable(doc []byte) bool {
	tables, last := 0, ""
	for l := range strings.SplitSeq(string(doc), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "*") {
			tables++
		}
		last = l
	}
	return tables == 1 && last == "COMMIT"
}

// batch loads the documents idx in one iptables-restore, then what
// follows a refused one in another, until every one has its result.
func (l *loader) batch(ctx context.Context, path string, docs []Doc, idx []int, results []error) error {
	for len(idx) > 0 {
		var in bytes.Buffer
		starts := make([]int, len(idx)) // the line each document starts on
		line := 1
		for k, i := range idx {
			starts[k] = line
			text := docs[i].Text
			in.Write(text)
			if len(text) > 0 && text[len(text)-1] != '\n' {
				in.WriteByte('\n')
			}
			line += bytes.Count(text, []byte("\n"))
			if len(text) > 0 && text[len(text)-1] != '\n' {
				line++
			}
		}
		err := l.load(ctx, path, docs[idx[0]].Family, idx[0], in.Bytes())
		var rej *Rejected
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &rej):
			return err
		case len(idx) == 1:
			results[idx[0]] = rej
			return nil
		case rej.Line == 0:
			// No telling which: each on its own.
			for _, i := range idx {
				if err := l.batch(ctx, path, docs, []int{i}, results); err != nil {
					return err
				}
			}
			return nil
		}
		k := 0
		for k+1 < len(idx) && starts[k+1] <= rej.Line {
			k++
		}
		// Those before it were committed; it was refused at its own line.
		results[idx[k]] = &Rejected{Program: rej.Program, Line: rej.Line - starts[k] + 1, Msg: rej.Msg}
		idx = idx[k+1:]
	}
	return nil
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

func program(family int) string {
	switch family {
	case 4:
		return "iptables-restore"
	case 6:
		return "ip6tables-restore"
	}
	return ""
}

// lookPath finds a program where a root's $PATH would.
func (t *Tester) lookPath(name string) (string, error) {
	path := t.Path
	if path == "" {
		path = strings.Join([]string{os.Getenv("PATH"), "/usr/sbin", "/sbin", "/usr/local/sbin"}, string(os.PathListSeparator))
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed here (the iptables package has it)", name)
}

type loader struct {
	dir     string
	timeout time.Duration
}

// command is the load of one document: the program, alone in a new
// network namespace, with a lock file of its own.
func (l *loader) command(ctx context.Context, path string, n int, doc []byte) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = bytes.NewReader(doc)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "XTABLES_LOCKFILE="+filepath.Join(l.dir, "xtables-"+strconv.Itoa(n)+".lock"))
	cmd.SysProcAttr = namespaced()
	cmd.WaitDelay = time.Second
	return cmd
}

func (l *loader) load(ctx context.Context, path string, family, n int, doc []byte) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	cmd := l.command(ctx, path, n, doc)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s did not finish within %s", filepath.Base(path), l.timeout)
		}
		return ctx.Err()
	case errors.As(err, &exit) && exit.Exited():
		line, msg := parseOutput(stderr.String())
		if msg == "" {
			msg = exit.String()
		}
		return &Rejected{Program: program(family), Line: line, Msg: msg}
	}
	return namespaceError(err)
}

var (
	lineRE   = regexp.MustCompile(`(?:Error occurred at line: |line )(\d+)`)
	prefixRE = regexp.MustCompile(`^ip6?tables-restore(?:[^:]*\))?: `)
)

// parseOutput finds the line iptables-restore names and what it said:
// "iptables-restore v1.8.9 (nf_tables): Couldn't load match `x':No such
// file or directory", "Error occurred at line: 6", "Try `iptables-restore
// -h' ..." (or, in older versions, "iptables-restore: line 6 failed").
func parseOutput(out string) (int, string) {
	line := 0
	var msgs []string
	for l := range strings.SplitSeq(out, "\n") {
		l = strings.TrimSpace(l)
		if m := lineRE.FindStringSubmatch(l); m != nil && line == 0 {
			line, _ = strconv.Atoi(m[1])
			if strings.HasPrefix(l, "Error occurred at line") {
				continue
			}
		}
		if l == "" || strings.HasPrefix(l, "Try `") {
			continue
		}
		msgs = append(msgs, prefixRE.ReplaceAllString(l, ""))
	}
	return line, strings.Join(msgs, "; ")
}

// probes are policies every server takes, made of the matches and targets
// fwpush's built-in templates use.
var probes = map[int][]byte{
	4: []byte(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 3 -j ACCEPT
-A INPUT -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT
-A INPUT -s 198.51.100.0/24 -i eth1 -p udp -m udp --dport 161 -j ACCEPT
-A INPUT -m limit --limit 1/sec -j LOG --log-prefix "fwpush DROP: "
-A OUTPUT -d 198.18.0.10/32 -o eth1 -p tcp -m tcp --sport 22 -j ACCEPT
COMMIT
`),
	6: []byte(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A INPUT -i eth0 -p tcp -m multiport --dports 80,443 -j ACCEPT
-A INPUT -m limit --limit 1/sec -j LOG --log-prefix "fwpush DROP: "
COMMIT
`),
}
