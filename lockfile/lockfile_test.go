package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the user another local user is played by.
const nobody = 65534

// TestMain lets the test binary stand in for another local user's
// process: with LOCKFILE_TEST_HOLD set, it holds the locks it names (see
// hold). Root's lock directory, which the tests make if it is not there,
// goes at the end, unless something else holds a lock in it.
func TestMain(m *testing.M) {
	if paths := os.Getenv("LOCKFILE_TEST_HOLD"); paths != "" {
		os.Exit(hold(strings.Split(paths, "\n")))
	}
	root := filepath.Join(runDir, rootDir)
	_, err := os.Lstat(root)
	made := errors.Is(err, fs.ErrNotExist)
	code := m.Run()
	if made {
		os.Remove(root) // only if empty
	}
	os.Exit(code)
}

// hold does what a hostile local user would to keep fwpush's runs
// waiting: for each path, it makes the directory if it can, creates the
// file (following symbolic links) and takes an exclusive flock on it. It
// prints "made DIR" and "held PATH" for what it did, then "ready", and
// holds the locks until its stdin closes.
func hold(paths []string) int {
	var files []*os.File
	for _, p := range paths {
		if os.Mkdir(filepath.Dir(p), 0o777) == nil {
			fmt.Println("made", filepath.Dir(p))
		}
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		files = append(files, f)
		fmt.Println("held", p)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	// Held open until here: a file the collector finalised would let go.
	for _, f := range files {
		f.Close()
	}
	return 0
}

// asNobody runs hold as user nobody on paths and returns what it held
// and made, held until the test ends.
func asNobody(t *testing.T, paths []string) (held, made map[string]bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	// The test binary, where nobody may run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fwpush-lockfile-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "lockfile.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCKFILE_TEST_HOLD="+strings.Join(paths, "\n"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	held, made = map[string]bool{}, map[string]bool{}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
		for p := range held {
			os.Remove(p)
		}
		for d := range made {
			os.RemoveAll(d)
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		what, p, _ := strings.Cut(sc.Text(), " ")
		switch what {
		case "held":
			held[p] = true
		case "made":
			made[p] = true
		}
		if what == "ready" {
			return held, made
		}
	}
	t.Fatalf("the helper ended before it was ready: %v", sc.Err())
	return nil, nil
}

// The "done when": a flock held by another user on any path
// fwpush might use does not block a root run.
func TestAnotherUserCannotHoldTheLock(t *testing.T) {
	key := filepath.Join(t.TempDir(), "site.toml")
	name := Name(key)
	paths := []string{
		filepath.Join("/run/lock", name), // where fwpush kept it before
		filepath.Join(runDir, rootDir, name),
		filepath.Join(tmpDir, name),
		filepath.Join(tmpDir, "fwpush-0", name),
		filepath.Join(os.TempDir(), name),
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		paths = append(paths, filepath.Join(x, name))
	}
	held, _ := asNobody(t, paths)
	if !held[filepath.Join(tmpDir, name)] {
		t.Fatalf("the helper could not even hold a lock in %s: this test proves nothing (held %v)", tmpDir, held)
	}

	l, err := Acquire(t.Context(), key, Options{Wait: 0})
	if err != nil {
		t.Fatalf("another user's locks (%v) keep root's from being taken: %v", held, err)
	}
	defer l.Release()
	if held[l.Path()] {
		t.Errorf("the other user holds %s too", l.Path())
	}
	if filepath.Dir(l.Path()) != filepath.Join(runDir, rootDir) {
		t.Errorf("root's lock is at %s, want it in %s", l.Path(), filepath.Join(runDir, rootDir))
	}
}

// A directory that is not the user's own, or that others may write to,
// or a symbolic link, is refused with a message that says why; a good one
// is made 0700.
func TestDir(t *testing.T) {
	euid := os.Geteuid()
	mine := fmt.Sprintf("fwpush-%d", euid)
	tests := []struct {
		name    string
		prepare func(t *testing.T, tmp string)
		want    string // "" for no error
	}{
		{"made", func(*testing.T, string) {}, ""},
		{"already there", func(t *testing.T, tmp string) { mkdir(t, filepath.Join(tmp, mine), 0o700) }, ""},
		{"writable by others", func(t *testing.T, tmp string) {
			mkdir(t, filepath.Join(tmp, mine), 0o777)
		}, "is writable by others (mode 0777): refused"},
		{"a symbolic link", func(t *testing.T, tmp string) {
			target := filepath.Join(tmp, "elsewhere")
			mkdir(t, target, 0o700)
			if err := os.Symlink(target, filepath.Join(tmp, mine)); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link: refused"},
		{"a file", func(t *testing.T, tmp string) {
			if err := os.WriteFile(filepath.Join(tmp, mine), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory"},
		{"another user's", func(t *testing.T, tmp string) {
			if euid != 0 {
				t.Skip("needs root, to give a directory away")
			}
			mkdir(t, filepath.Join(tmp, mine), 0o700)
			if err := os.Chown(filepath.Join(tmp, mine), nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, fmt.Sprintf("belongs to uid %d, not to uid %d, who runs fwpush: refused", nobody, euid)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			tt.prepare(t, tmp)
			// No /run here: the directory under tmp, as for another user.
			dir, err := dirFor(euid, "", filepath.Join(tmp, "no-run"), tmp)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v, %v; want a directory, mode 0700", dir, fi, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, %v; want an error saying %q", dir, err, tt.want)
			}
		})
	}
}

// $XDG_RUNTIME_DIR is used when it is the user's own and no one else's to
// write; otherwise the directory under /tmp is. Root's place depends on
// no variable.
func TestDirXDG(t *testing.T) {
	// A user who is not root: as root, nobody, whose directories root
	// makes and gives away.
	uid := os.Geteuid()
	if uid == 0 {
		uid = nobody
	}
	dir := func(mode os.FileMode, owner int) string {
		d := filepath.Join(t.TempDir(), "d")
		mkdir(t, d, mode)
		if owner != os.Geteuid() {
			if err := os.Chown(d, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	run, tmp := t.TempDir(), t.TempDir()
	under := filepath.Join(tmp, fmt.Sprintf("fwpush-%d", uid))
	mkdir(t, under, 0o700)
	if uid != os.Geteuid() {
		if err := os.Chown(under, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	own := dir(0o700, uid)
	type test struct {
		name      string
		uid       int
		xdg, want string
	}
	tests := []test{
		{"the user's own", uid, own, own},
		{"writable by others", uid, dir(0o777, uid), under},
		{"relative", uid, "run/user", under},
		{"unset", uid, "", under},
	}
	if os.Geteuid() == 0 {
		tests = append(tests,
			test{"another user's (su keeps it)", uid, dir(0o700, 0), under},
			test{"root", 0, own, filepath.Join(run, rootDir)})
	}
	for _, tt := range tests {
		got, err := dirFor(tt.uid, tt.xdg, run, tmp)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// privateDir is a directory good for locks.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A symbolic link planted at the lock's path is refused, and what it
// points to is neither made nor changed; so is a lock file of another
// user's.
func TestLockFileChecked(t *testing.T) {
	dir := privateDir(t)
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.Symlink(target, filepath.Join(dir, Name("site"))); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(t.Context(), "site", Options{Dir: dir, Who: "me"})
	if err == nil {
		l.Release()
		t.Fatal("a lock through a symbolic link was taken")
	}
	if !strings.Contains(err.Error(), "is a symbolic link: refused") {
		t.Errorf("error %q does not say the lock is a symbolic link", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was made: %v", err)
	}

	if os.Geteuid() != 0 {
		return
	}
	p := filepath.Join(dir, Name("other"))
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if l, err := Acquire(t.Context(), "other", Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "does not belong to uid 0") {
		if l != nil {
			l.Release()
		}
		t.Errorf("a lock file of nobody's: %v, want it refused", err)
	}
}

// A waiter learns who holds the lock, waits no longer than it was told,
// and takes the lock once it is let go.
func TestWait(t *testing.T) {
	dir := privateDir(t)
	first, err := Acquire(t.Context(), "site", Options{Dir: dir, Who: "alice@box pid 42"})
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	_, err = Acquire(t.Context(), "site", Options{Dir: dir, Wait: 300 * time.Millisecond, Waiting: func(h string) { told = append(told, h) }})
	var busy *BusyError
	if !errors.As(err, &busy) || !strings.HasPrefix(busy.Holder, "alice@box pid 42, since ") {
		t.Fatalf("got %v, want a *BusyError naming alice@box pid 42", err)
	}
	if len(told) != 1 || told[0] != busy.Holder {
		t.Errorf("Waiting was called with %q, want once with %q", told, busy.Holder)
	}
	// Without a wait, nothing says it waits.
	told = nil
	if _, err := Acquire(t.Context(), "site", Options{Dir: dir, Waiting: func(h string) { told = append(told, h) }}); !errors.As(err, &busy) || len(told) != 0 {
		t.Errorf("no wait: %v, told %q; want a *BusyError at once", err, told)
	}

	got := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), "site", Options{Dir: dir, Wait: time.Minute, Who: "bob@box pid 43", Waiting: func(string) { first.Release() }})
		if err == nil {
			defer l.Release()
			if h := readHolder(l.f); !strings.HasPrefix(h, "bob@box pid 43, since ") {
				err = fmt.Errorf("the lock file says %q, want bob's name", h)
			}
		}
		got <- err
	}()
	if err := <-got; err != nil {
		t.Errorf("waiting for the lock to be let go: %v", err)
	}
}

// A waiter whose context ends stops waiting at once, with the context's
// error.
func TestWaitCancelled(t *testing.T) {
	dir := privateDir(t)
	l, err := Acquire(t.Context(), "site", Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithCancel(t.Context())
	_, err = Acquire(ctx, "site", Options{Dir: dir, Wait: time.Hour, Waiting: func(string) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// Shared holders hold together; an exclusive one waits for them. The
// file goes with the last holder.
func TestShared(t *testing.T) {
	dir := privateDir(t)
	a, err := Acquire(t.Context(), "site", Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(t.Context(), "site", Options{Dir: dir, Shared: true})
	if err != nil {
		t.Fatalf("a second shared holder: %v", err)
	}
	var busy *BusyError
	if _, err := Acquire(t.Context(), "site", Options{Dir: dir}); !errors.As(err, &busy) {
		t.Errorf("an exclusive lock beside shared ones: %v, want a *BusyError", err)
	}
	a.Release()
	if _, err := os.Stat(b.Path()); err != nil {
		t.Errorf("the file went while b held it: %v", err)
	}
	b.Release()
	if _, err := os.Stat(b.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file is left after the last holder: %v", err)
	}
}
