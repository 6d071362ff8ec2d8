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
//
// Rules that match ipsets (-m set --match-set) load only where the sets
// exist, and sets belong to a network namespace: a document's sets are
// created with this machine's ipset in its own namespace first. The sets'
// own documents, members and all, are loaded with ipset restore, each
// alone in a namespace (TestSets).
//
// The documents of the nftables backend (nft -f input) are loaded with
// this machine's nft the same way, each alone in a namespace, and the
// table they make is listed back (TestNFT): what nft lists is what a
// host's read will find once the policy is applied.
package xtables

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
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
	// Sets is an ipset restore document that creates the sets Text
	// matches (their create lines are enough); it is loaded with ipset
	// in the same namespace first. Nil for none.
	Sets []byte
}

// Rejected is a document iptables-restore (or ipset) refused.
type Rejected struct {
	Program string // "iptables-restore", "ip6tables-restore" or "ipset"
	Line    int    // the document's line it names; 0 when it names none
	Msg     string // what it said, without its version and usage hint

	exit int // the program's exit status
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
// policies at all, and says why: no iptables (or no ipset, for documents
// with sets), no permission to make the namespaces, or an iptables that
// refuses even a policy every server accepts. Documents are loaded in
// parallel; ctx cancels them. Documents that differ in their comments only
// (the policies of the hosts of a role, with sets) are loaded once.
func (t *Tester) Test(ctx context.Context, docs []Doc) ([]error, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	progs := map[int]string{}
	withSets := false
	for _, d := range docs {
		withSets = withSets || len(d.Sets) > 0
		if _, ok := progs[d.Family]; ok {
			continue
		}
		name := program(d.Family)
		if name == "" {
			return nil, fmt.Errorf("no iptables for IPv%d", d.Family)
		}
		path, err := t.lookPath(name, "iptables")
		if err != nil {
			return nil, err
		}
		progs[d.Family] = path
	}
	l, err := t.loader(withSets)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(l.dir)

	// First a policy of the kind every server takes, made of the matches
	// fwpush's templates use (and sets, when the documents have some): if
	// this machine refuses it, its refusals say nothing about the
	// policies. The probes load at once, each in its namespace.
	type probe struct {
		path string
		doc  Doc
		n    int
	}
	var ps []probe
	for _, family := range []int{4, 6} {
		path, ok := progs[family]
		if !ok {
			continue
		}
		ps = append(ps, probe{path, Doc{Family: family, Text: probes[family]}, -family})
		if withSets {
			ps = append(ps, probe{path, Doc{Family: family, Text: setProbes[family], Sets: setProbeSets}, -10 - family})
		}
	}
	probeErrs := make([]error, len(ps))
	var pg errgroup.Group
	for i, p := range ps {
		pg.Go(func() error {
			probeErrs[i] = l.load(ctx, p.path, p.doc, p.n)
			return nil
		})
	}
	_ = pg.Wait() // each probe's error is in probeErrs
	for _, err := range probeErrs {
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
	uniq, of := distinct(docs)
	parallel := cmpOr(t.Parallel, max(2, runtime.NumCPU()))
	results := make([]error, len(uniq))
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, batch := range batches(uniq, parallel) {
		g.Go(func() error {
			return l.batch(ctx, progs[uniq[batch[0]].Family], uniq, batch, results)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]error, len(docs))
	for i := range docs {
		out[i] = results[of[i]]
	}
	return out, nil
}

// distinct returns the documents that load differently, and for each of
// docs the index of its own among them. Comment lines are blanked, not
// dropped, when documents are compared: a line iptables-restore names is
// the same line in each.
func distinct(docs []Doc) ([]Doc, []int) {
	return distinctBy(docs, func(h io.Writer, d Doc) {
		fmt.Fprintf(h, "%d\x00%d\x00", d.Family, len(d.Sets))
		h.Write(d.Sets)
		uncommented(h, d.Text)
	})
}

// distinctBy keeps the first of each run of items whose key writes the
// same bytes, and says for each item which of those it is.
func distinctBy[T any](items []T, key func(h io.Writer, it T)) ([]T, []int) {
	seen := map[[sha256.Size]byte]int{}
	var uniq []T
	of := make([]int, len(items))
	for i, it := range items {
		h := sha256.New()
		key(h, it)
		k := [sha256.Size]byte(h.Sum(nil))
		j, ok := seen[k]
		if !ok {
			j = len(uniq)
			seen[k] = j
			uniq = append(uniq, it)
		}
		of[i] = j
	}
	return uniq, of
}

// uncommented writes text to h without its comment lines (a line's
// place stays: its newline is written).
func uncommented(h io.Writer, text []byte) {
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			h.Write(line)
		}
		h.Write([]byte("\n"))
	}
}

// TestSets loads each ipset restore document (the sets of a policy, or
// one set) with this machine's ipset, each alone in a throwaway network
// namespace, in parallel, and returns one error per document: nil when it loaded, a
// *Rejected when ipset refused it. A non-nil error instead means this
// machine cannot test sets, and says why. Identical documents are loaded
// once.
func (t *Tester) TestSets(ctx context.Context, docs [][]byte) ([]error, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	l, err := t.loader(true)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(l.dir)
	// The probe loads beside the documents; what they say counts only
	// once it has loaded.
	probed := make(chan error, 1)
	go func() { probed <- l.loadSets(ctx, setProbeSets, -1) }()
	seen := map[string]int{}
	var uniq [][]byte
	of := make([]int, len(docs))
	for i, d := range docs {
		j, ok := seen[string(d)]
		if !ok {
			j = len(uniq)
			seen[string(d)] = j
			uniq = append(uniq, d)
		}
		of[i] = j
	}
	// One ipset restore per document: an -exist in one would let the
	// next one's duplicates pass, were they in the same restore.
	results := make([]error, len(uniq))
	var g errgroup.Group
	g.SetLimit(cmpOr(t.Parallel, max(2, runtime.NumCPU())))
	for i, doc := range uniq {
		g.Go(func() error {
			err := l.loadSets(ctx, doc, i)
			var rej *Rejected
			if err != nil && !errors.As(err, &rej) {
				return err
			}
			if rej != nil {
				results[i] = rej
			}
			return nil
		})
	}
	gerr := g.Wait()
	if err := <-probed; err != nil {
		var rej *Rejected
		if errors.As(err, &rej) {
			return nil, fmt.Errorf("ipset here refuses sets every server takes (%v): it cannot tell good sets from bad", rej)
		}
		return nil, err
	}
	if gerr != nil {
		return nil, gerr
	}
	out := make([]error, len(docs))
	for i := range docs {
		out[i] = results[of[i]]
	}
	return out, nil
}

// loader makes a test's loader, with a directory of its own for the caller
// to remove; with sets, it finds ipset and sh too.
func (t *Tester) loader(sets bool) (*loader, error) {
	l := &loader{timeout: t.Timeout}
	if l.timeout <= 0 {
		l.timeout = 20 * time.Second
	}
	if sets {
		var err error
		if l.ipset, err = t.lookPath("ipset", "ipset"); err != nil {
			return nil, err
		}
		if l.sh, err = t.lookPath("sh", "dash"); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "fwpush-xtables-")
	if err != nil {
		return nil, err
	}
	l.dir = dir
	return l, nil
}

// maxBatch bounds a batch, so that one slow document does not hold many
// others past the timeout.
const maxBatch = 64

// batches groups the documents by family, then by sets, into batches,
// enough of them to keep parallel loads busy. A document that is not one
// table ending in COMMIT goes alone: its lines could not be told from the
// next one's.
func batches(docs []Doc, parallel int) [][]int {
	var out [][]int
	for _, family := range []int{4, 6} {
		var groups [][]int // by sets, in the order first met
		group := map[string]int{}
		n := 0
		for i, d := range docs {
			if d.Family != family {
				continue
			}
			if !oneTable(d.Text) {
				out = append(out, []int{i})
				continue
			}
			g, ok := group[string(d.Sets)]
			if !ok {
				g = len(groups)
				group[string(d.Sets)] = g
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], i)
			n++
		}
		size := min(maxBatch, max(1, (n+parallel-1)/parallel))
		for _, idx := range groups {
			for len(idx) > 0 {
				k := min(size, len(idx))
				out = append(out, idx[:k])
				idx = idx[k:]
			}
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

// concat writes documents one after the other, each ending in a newline,
// and returns the line each starts on.
func concat(docs [][]byte) ([]byte, []int) {
	var in bytes.Buffer
	starts := make([]int, len(docs))
	line := 1
	for k, text := range docs {
		starts[k] = line
		in.Write(text)
		line += bytes.Count(text, []byte("\n"))
		if len(text) > 0 && text[len(text)-1] != '\n' {
			in.WriteByte('\n')
			line++
		}
	}
	return in.Bytes(), starts
}

// batch loads the documents idx in one iptables-restore, then what
// follows a refused one in another, until every one has its result.
func (l *loader) batch(ctx context.Context, path string, docs []Doc, idx []int, results []error) error {
	for len(idx) > 0 {
		texts := make([][]byte, len(idx))
		for k, i := range idx {
			texts[k] = docs[i].Text
		}
		in, starts := concat(texts)
		err := l.load(ctx, path, Doc{Family: docs[idx[0]].Family, Text: in, Sets: docs[idx[0]].Sets}, idx[0])
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

// lookPath finds a program where a root's $PATH would; pkg names the
// Debian package that has it.
func (t *Tester) lookPath(name, pkg string) (string, error) {
	path := t.Path
	if path == "" {
		path = strings.Join([]string{os.Getenv("PATH"), "/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"}, string(os.PathListSeparator))
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
	return "", fmt.Errorf("%s is not installed here (the %s package has it)", name, pkg)
}

type loader struct {
	dir     string
	timeout time.Duration
	// ipset and sh load a document's sets before its rules; "" when no
	// document has sets.
	ipset, sh string
}

// command is the load of one document (the n-th, for its lock file's
// name): the program with args, alone in a new network namespace, with
// a lock file of its own, doc on its stdin.
func (l *loader) command(ctx context.Context, n int, doc []byte, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(doc)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "XTABLES_LOCKFILE="+filepath.Join(l.dir, "xtables-"+strconv.Itoa(n)+".lock"))
	cmd.SysProcAttr = namespaced()
	cmd.WaitDelay = time.Second
	return cmd
}

// loadLine loads a document's sets, then its rules, in one namespace: $1
// is ipset, $2 the sets' file, $3 iptables-restore. It exits setsRefused
// when ipset refuses the sets.
const (
	loadLine    = `"$1" restore -file "$2" || exit 125; exec "$3"`
	setsRefused = 125
)

// load loads a document, with its sets first when it has some.
func (l *loader) load(ctx context.Context, path string, d Doc, n int) error {
	prog := program(d.Family)
	if len(d.Sets) == 0 {
		return l.run(ctx, prog, func(ctx context.Context) *exec.Cmd { return l.command(ctx, n, d.Text, path) })
	}
	sets := filepath.Join(l.dir, "sets-"+strconv.Itoa(n))
	if err := os.WriteFile(sets, d.Sets, 0o644); err != nil {
		return err
	}
	defer os.Remove(sets)
	err := l.run(ctx, prog, func(ctx context.Context) *exec.Cmd {
		return l.command(ctx, n, d.Text, l.sh, "-c", loadLine, "sh", l.ipset, sets, path)
	})
	var rej *Rejected
	if errors.As(err, &rej) && rej.exit == setsRefused {
		// ipset refusing sets is TestSets' to report, at their own
		// lines: here it means that this machine cannot make them.
		return fmt.Errorf("ipset here cannot make the sets %s needs: %s", prog, rej.Msg)
	}
	return err
}

// loadSets loads one ipset restore document.
func (l *loader) loadSets(ctx context.Context, doc []byte, n int) error {
	return l.run(ctx, "ipset", func(ctx context.Context) *exec.Cmd { return l.command(ctx, n, doc, l.ipset, "restore") })
}

// run runs the command cmd makes, within the timeout, and says how it
// went: nil; a *Rejected when prog refused its input; or why it did not
// run.
func (l *loader) run(ctx context.Context, prog string, cmd func(context.Context) *exec.Cmd) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	c := cmd(ctx)
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = &stderr, &stderr
	err := c.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s did not finish within %s", prog, l.timeout)
		}
		return ctx.Err()
	case errors.As(err, &exit) && exit.Exited():
		line, msg := parseOutput(stderr.String())
		if msg == "" {
			msg = exit.String()
		}
		return &Rejected{Program: prog, Line: line, Msg: msg, exit: exit.ExitCode()}
	}
	return namespaceError(err)
}

var (
	lineRE   = regexp.MustCompile(`(?:Error occurred at line: |Error in line |line )(\d+)`)
	prefixRE = regexp.MustCompile(`^(?:ip6?tables(?:-nft|-legacy)?-restore(?:[^:]*\))?|ipset v[^:]*: Error in line \d+): `)
)

// parseOutput finds the line iptables-restore names and what it said:
// "iptables-restore v1.8.9 (nf_tables): Couldn't load match `x':No such
// file or directory", "Error occurred at line: 6", "Try `iptables-restore
// -h' ..." (or, in older versions, "iptables-restore: line 6 failed"); or
// what ipset says: "ipset v7.17: Error in line 4: Element cannot be added
// to the set: it's already added".
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

// setProbeSets and setProbes are sets, and policies that match them, of
// the kind every server with ipset takes.
var (
	setProbeSets = []byte(`create fwp-probe-4 hash:ip family inet -exist
add fwp-probe-4 198.18.0.10
create fwp-probe-6 hash:ip family inet6 -exist
add fwp-probe-6 2001:db8::10
create fwp-probe-n hash:net family inet -exist
add fwp-probe-n 198.51.100.0/24
`)
	setProbes = map[int][]byte{
		4: []byte(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -s 198.18.0.10/32 -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -i eth1 -p tcp -m set --match-set fwp-probe-4 src -m tcp --sport 22 -j ACCEPT
-A INPUT -i eth1 -p udp -m set --match-set fwp-probe-n src -m udp --dport 161 -j ACCEPT
-A OUTPUT -o eth1 -p tcp -m set --match-set fwp-probe-4 dst -m multiport --dports 80,443 -j ACCEPT
COMMIT
`),
		6: []byte(`*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -i eth0 -p tcp -m set --match-set fwp-probe-6 src -m tcp --dport 3306 -j ACCEPT
COMMIT
`),
	}
)
