package xtables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/internal/testenv"
)

// TestMain lets the test binary load documents as another user: with
// FWPUSH_XTABLES_CHILD set it runs childMain instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("FWPUSH_XTABLES_CHILD") == "1" {
		childMain()
		return
	}
	testenv.Main(m)
}

func TestParseOutput(t *testing.T) {
	tests := []struct {
		out  string
		line int
		msg  string
	}{
		{"iptables-restore v1.8.9 (nf_tables): Couldn't load match `nosuchmatch':No such file or directory\n\nError occurred at line: 6\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
			6, "Couldn't load match `nosuchmatch':No such file or directory"},
		{"iptables-restore v1.8.9 (nf_tables): Chain 'NOSUCHCHAIN' does not exist\nError occurred at line: 4\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n",
			4, "Chain 'NOSUCHCHAIN' does not exist"},
		{"ip6tables-restore v1.8.9 (legacy): host/network `198.18.0.10' not found\nError occurred at line: 7\nTry `ip6tables-restore -h' or 'ip6tables-restore --help' for more information.\n",
			7, "host/network `198.18.0.10' not found"},
		{"iptables-restore: line 12 failed\n", 12, "line 12 failed"},
		{"ipset v7.17: Error in line 4: Element cannot be added to the set: it's already added\n", 4, "Element cannot be added to the set: it's already added"},
		{"ip6tables-nft-restore v1.8.9 (nf_tables): The protocol family of set fwp-app-4 is IPv4, which is not applicable.\n\nError occurred at line: 3\n", 3,
			"The protocol family of set fwp-app-4 is IPv4, which is not applicable."},
		{"Fatal: can't open lock file /x: Permission denied\n", 0, "Fatal: can't open lock file /x: Permission denied"},
		{"", 0, ""},
	}
	for _, tt := range tests {
		line, msg := parseOutput(tt.out)
		if line != tt.line || msg != tt.msg {
			t.Errorf("parseOutput(%q) = %d, %q; want %d, %q", tt.out, line, msg, tt.line, tt.msg)
		}
	}
}

// The load can never reach the machine's own firewall or xtables lock:
// the program starts in a new network namespace (a new user namespace too,
// when not root) or not at all, with a lock file of the run's own.
func TestCommandIsolated(t *testing.T) {
	l := &loader{dir: "/tmp/fwpush-xtables-x"}
	cmd := l.command(context.Background(), 3, nil, "/usr/sbin/iptables-restore")
	if len(cmd.Args) != 1 {
		t.Errorf("arguments %q: the document goes on stdin, and nothing else is needed", cmd.Args)
	}
	a := cmd.SysProcAttr
	if a == nil || a.Cloneflags&syscall.CLONE_NEWNET == 0 {
		t.Fatalf("not in a new network namespace: %+v", a)
	}
	if os.Geteuid() != 0 && a.Cloneflags&syscall.CLONE_NEWUSER == 0 {
		t.Errorf("not root, and not in a new user namespace: %+v", a)
	}
	if !strings.Contains(strings.Join(cmd.Env, "\n"), "\nXTABLES_LOCKFILE=/tmp/fwpush-xtables-x/xtables-3.lock") {
		t.Errorf("the lock file is not the run's own: %q", cmd.Env)
	}
}

var (
	good = probes[4]
	// A match no iptables knows: refused by iptables itself.
	badMatch = []byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m nosuchmatch -j ACCEPT\nCOMMIT\n")
	// A jump to a chain that does not exist: only the kernel refuses it
	// with iptables-nft (its --test would have let it pass).
	badJump = []byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j NOSUCHCHAIN\nCOMMIT\n")
	// An IPv4 address in an IPv6 document.
	badAddr6 = []byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 198.18.0.10/32 -j ACCEPT\nCOMMIT\n")
	// Two tables in one document: loaded alone, not in a batch.
	twoTables = append(append([]byte{}, good...), badMatch...)

	// Sets, and rules that match them: a set that is there, one that is
	// not, and one of the other family.
	decl     = []byte("create fwp-app-4 hash:ip family inet -exist\ncreate fwp-app-6 hash:ip family inet6 -exist\n")
	setRule  = []byte("# host a\n*filter\n:INPUT DROP [0:0]\n-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n")
	setRule6 = []byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -i eth0 -p tcp -m set --match-set fwp-app-6 src -m tcp --dport 3306 -j ACCEPT\nCOMMIT\n")
	noSet    = []byte("# host a\n*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m set --match-set fwp-nope-4 src -j ACCEPT\nCOMMIT\n")
	// The same documents as the hosts of a role have them: their
	// comments differ, and they are loaded once.
	noSetToo   = []byte(strings.Replace(string(noSet), "# host a", "# host b", 1))
	setRuleToo = []byte(strings.Replace(string(setRule), "# host a", "# host b", 1))
	wrongSet6  = []byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m set --match-set fwp-app-4 src -j ACCEPT\nCOMMIT\n")

	docs = []Doc{
		{Family: 4, Text: good}, {Family: 4, Text: badMatch}, {Family: 4, Text: good}, {Family: 4, Text: badJump}, {Family: 4, Text: good},
		{Family: 6, Text: probes[6]}, {Family: 6, Text: badAddr6}, {Family: 6, Text: probes[6]},
		{Family: 4, Text: twoTables}, {Family: 4, Text: good},
		{Family: 4, Text: setRule, Sets: decl}, {Family: 4, Text: noSet, Sets: decl}, {Family: 4, Text: setRuleToo, Sets: decl},
		{Family: 4, Text: noSetToo, Sets: decl}, {Family: 6, Text: setRule6, Sets: decl}, {Family: 6, Text: wrongSet6, Sets: decl},
		// Without its sets, a rule that matches one is refused.
		{Family: 4, Text: setRule},
	}
)

// outcome is a test result that survives JSON, from the child too.
type outcome struct {
	Err     string   // the machine cannot test
	Results []string // per document: "" loaded, or Program:Line:Msg
}

func run(t *Tester) outcome {
	// Several documents of a family go to one iptables-restore: one by
	// one, and all at once, must come to the same.
	var o outcome
	for _, parallel := range []int{len(docs), 1} {
		t.Parallel = parallel
		got := run1(t)
		if o.Results != nil && !cmp.Equal(got, o) {
			return outcome{Err: fmt.Sprintf("with %d at once: %v; with %d: %v", len(docs), o, parallel, got)}
		}
		o = got
	}
	return o
}

func run1(t *Tester) outcome {
	res, err := t.Test(context.Background(), docs)
	if err != nil {
		return outcome{Err: err.Error()}
	}
	var o outcome
	for _, r := range res {
		var rej *Rejected
		switch {
		case r == nil:
			o.Results = append(o.Results, "")
		case errors.As(r, &rej):
			o.Results = append(o.Results, fmt.Sprintf("%s:%d", rej.Program, rej.Line))
		default:
			o.Results = append(o.Results, "not a *Rejected: "+r.Error())
		}
	}
	return o
}

var want = outcome{Results: []string{
	"", "iptables-restore:4", "", "iptables-restore:3", "",
	"", "ip6tables-restore:3", "",
	"iptables-restore:17", "",
	"", "iptables-restore:4", "",
	"iptables-restore:4", "", "ip6tables-restore:3",
	"iptables-restore:4",
}}

// check compares an outcome with want. iptables-nft names the COMMIT (line
// 4) for what only the kernel refuses; iptables-legacy names the rule.
func check(t *testing.T, got outcome) {
	t.Helper()
	if len(got.Results) == len(want.Results) && got.Results[3] == "iptables-restore:4" {
		got.Results[3] = "iptables-restore:3"
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// backends lists the iptables this machine has: the default one, and the
// legacy and nft ones where installed, as directories holding
// iptables-restore and ip6tables-restore.
func backends(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if _, err := (&Tester{}).lookPath("iptables-restore", "iptables"); err != nil {
		t.Skipf("no iptables here: %v (scripts/deps.sh installs it)", err)
	}
	ipset, err := (&Tester{}).lookPath("ipset", "ipset")
	if err != nil {
		t.Fatalf("%v: scripts/deps.sh installs it", err)
	}
	sh, err := (&Tester{}).lookPath("sh", "dash")
	if err != nil {
		t.Fatal(err)
	}
	out["default"] = ""
	for _, b := range []string{"legacy", "nft"} {
		dir := t.TempDir()
		ok := true
		for _, fam := range []string{"iptables", "ip6tables"} {
			target, err := exec.LookPath(fam + "-" + b + "-restore")
			if err != nil {
				target = "/usr/sbin/" + fam + "-" + b + "-restore"
			}
			if _, err := os.Stat(target); err != nil {
				ok = false
				break
			}
			// xtables-*-multi picks the program by the name it is run as.
			if err := os.Symlink(target, filepath.Join(dir, fam+"-restore")); err != nil {
				t.Fatal(err)
			}
		}
		for name, target := range map[string]string{"ipset": ipset, "sh": sh} {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		if ok {
			out[b] = dir
		}
	}
	return out
}

// TestLoad loads good and bad documents with every iptables backend this
// machine has, and checks that the machine's own firewall (and sets) did
// not change.
func TestLoad(t *testing.T) {
	testenv.Short(t, "needs root")
	if os.Geteuid() != 0 {
		t.Skip("TestUnprivileged covers users other than root; this one needs root to read the machine's own rules")
	}
	before := ownRules(t)
	for name, dir := range backends(t) {
		t.Run(name, func(t *testing.T) {
			check(t, run(&Tester{Path: dir}))
		})
	}
	if after := ownRules(t); after != before {
		t.Errorf("the machine's own rules changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func ownRules(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, save := range []string{"iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save", "ipset", "nft"} {
		args := []string{}
		switch save {
		case "ipset":
			args = []string{"save"} // the machine's own sets, too
		case "nft":
			args = []string{"list", "ruleset"} // and its nftables tables
		}
		out, err := exec.Command(save, args...).Output()
		if err != nil {
			continue // not installed, or no tables of that kind
		}
		for l := range strings.SplitSeq(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				b.WriteString(counters(l) + "\n")
			}
		}
	}
	return b.String()
}

// counters drops a chain's packet counters, which traffic changes.
func counters(l string) string {
	if strings.HasPrefix(l, ":") {
		if i := strings.LastIndex(l, " ["); i > 0 {
			return l[:i]
		}
	}
	return l
}

// TestUnprivileged runs the same loads as user nobody, in user and network
// namespaces of its own, with every backend.
func TestUnprivileged(t *testing.T) {
	testenv.Short(t, "needs root")
	if os.Geteuid() != 0 {
		t.Skip("switching to user nobody needs root; as any other user TestLoad's cases run with that user")
	}
	// nobody must be able to run the test binary and write its lock files.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "xtables.test")
	copyFile(t, os.Args[0], bin)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	for name, path := range backends(t) {
		t.Run(name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), bin)
			cmd.Dir = tmp
			cmd.Env = []string{"FWPUSH_XTABLES_CHILD=1", "FWPUSH_XTABLES_PATH=" + path, "TMPDIR=" + tmp, "PATH=/usr/bin:/bin"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v: %s", err, out)
			}
			var got outcome
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("child said %q: %v", out, err)
			}
			if strings.Contains(got.Err, "does not let users make user namespaces") {
				t.Skipf("this kernel does not let users test policies: %s", got.Err)
			}
			check(t, got)
		})
	}
}

func childMain() {
	if os.Geteuid() == 0 {
		fmt.Println(`{"Err":"the child runs as root"}`)
		return
	}
	_ = json.NewEncoder(os.Stdout).Encode(run(&Tester{Path: os.Getenv("FWPUSH_XTABLES_PATH")}))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// A machine without iptables cannot test: Test says so, naming the program.
func TestNotInstalled(t *testing.T) {
	_, err := (&Tester{Path: t.TempDir()}).Test(context.Background(), docs)
	if err == nil || err.Error() != "iptables-restore is not installed here (the iptables package has it)" {
		t.Errorf("Test without iptables: %v", err)
	}
}

// When the namespaces cannot be made, the reason says what would help.
func TestNamespaceError(t *testing.T) {
	err := namespaceError(&os.PathError{Op: "fork/exec", Path: "/usr/sbin/iptables-restore", Err: syscall.EPERM})
	want := "cannot make a network namespace (fork/exec /usr/sbin/iptables-restore: operation not permitted): in a container, that needs CAP_SYS_ADMIN"
	if os.Geteuid() != 0 {
		want = "this system does not let users make user namespaces (fork/exec /usr/sbin/iptables-restore: operation not permitted; see user.max_user_namespaces, kernel.unprivileged_userns_clone or kernel.apparmor_restrict_unprivileged_userns): run as root to test policies"
	}
	if err.Error() != want {
		t.Errorf("namespaceError = %q, want %q", err, want)
	}
	if err := namespaceError(errors.New("other")); err.Error() != "other" {
		t.Errorf("namespaceError of an error without errno = %v", err)
	}
}

// Documents are batched by family and sets, enough batches to keep every
// load busy, at most maxBatch each; one that is not a single table goes
// alone.
func TestBatches(t *testing.T) {
	var ds []Doc
	for range 200 {
		ds = append(ds, Doc{Family: 4, Text: good})
	}
	ds = append(ds, Doc{Family: 6, Text: probes[6]}, Doc{Family: 4, Text: twoTables}, Doc{Family: 6, Text: probes[6]},
		Doc{Family: 4, Text: []byte("*filter\n:INPUT DROP [0:0]\n")}, Doc{Family: 5, Text: good})
	for range 3 {
		ds = append(ds, Doc{Family: 4, Text: setRule, Sets: decl}, Doc{Family: 4, Text: setRule, Sets: setProbeSets})
	}
	var sizes []int
	seen := map[int]bool{}
	for _, b := range batches(ds, 2) {
		sizes = append(sizes, len(b))
		for _, i := range b {
			if seen[i] || ds[i].Family != ds[b[0]].Family || !bytes.Equal(ds[i].Sets, ds[b[0]].Sets) {
				t.Fatalf("batch %v: document %d twice, or of another family or other sets", b, i)
			}
			seen[i] = true
		}
	}
	if len(seen) != len(ds) {
		t.Errorf("%d of %d documents batched", len(seen), len(ds))
	}
	if want := []int{1, 1, 64, 64, 64, 8, 3, 3, 1, 1, 1}; !cmp.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
}

// Documents that differ in their comments only are one; those that differ
// in a rule, their family or their sets are not.
func TestDistinct(t *testing.T) {
	ds := []Doc{
		{Family: 4, Text: setRule, Sets: decl},
		{Family: 4, Text: setRuleToo, Sets: decl},
		{Family: 4, Text: []byte("  # indented\n" + string(setRule[len("# host a\n"):])), Sets: decl},
		{Family: 4, Text: setRule},
		{Family: 6, Text: setRule, Sets: decl},
		{Family: 4, Text: noSet, Sets: decl},
		// A comment that moves the rules a line down is not the same:
		// iptables-restore's line numbers would differ.
		{Family: 4, Text: []byte("# one\n# two\n" + string(setRule[len("# host a\n"):])), Sets: decl},
	}
	uniq, of := distinct(ds)
	if want := []int{0, 0, 0, 1, 2, 3, 4}; !cmp.Equal(of, want) || len(uniq) != 5 {
		t.Errorf("distinct: %d documents, indices %v; want 5, %v", len(uniq), of, want)
	}
}

// TestSets loads each set document alone: what ipset refuses names the
// document's own line, whatever the documents before it allowed (-exist).
func TestSets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading sets into a network namespace here needs root (TestUnprivileged covers other users for rules)")
	}
	sets := [][]byte{
		[]byte("create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\nadd fwp-app-4 198.18.0.22\n"),
		// the same set in another document: loaded in a namespace of its
		// own, it is no duplicate
		[]byte("create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\n"),
		[]byte("create fwp-dup-4 hash:ip family inet\nadd fwp-dup-4 198.18.0.21\nadd fwp-dup-4 198.18.0.21\n"),
		[]byte("create fwp-app-6 hash:ip family inet6 -exist\nadd fwp-app-6 198.18.0.21\n"),
		[]byte("create fwp-net-4 hash:net family inet -exist\nadd fwp-net-4 198.51.100.0/24\n"),
		[]byte("create fwp-app-4 hash:ip family inet -exist\nadd fwp-app-4 198.18.0.21\n"),
		[]byte("create fwp-what hash:nope\n"),
	}
	want := []string{"", "", "ipset:3", "ipset:2", "", "", "ipset:1"}
	for _, parallel := range []int{1, len(sets)} {
		res, err := (&Tester{Parallel: parallel}).TestSets(context.Background(), sets)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res {
			var rej *Rejected
			switch {
			case r == nil:
				got = append(got, "")
			case errors.As(r, &rej):
				got = append(got, fmt.Sprintf("%s:%d", rej.Program, rej.Line))
			default:
				got = append(got, "not a *Rejected: "+r.Error())
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d at once: results (-want +got):\n%s", parallel, diff)
		}
	}
	_, err := (&Tester{Path: t.TempDir()}).TestSets(context.Background(), sets)
	if err == nil || err.Error() != "ipset is not installed here (the ipset package has it)" {
		t.Errorf("TestSets without ipset: %v", err)
	}
}
