package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// Bridge names inside the switch namespace.
const (
	publicBridge  = Prefix + "-pub"
	privateBridge = Prefix + "-prv"
)

// readyTimeout bounds how long one sshd may take to listen.
const readyTimeout = 20 * time.Second

// Up builds the lab: namespaces, bridges, addresses and routes, one sshd per
// host, the client key and known_hosts. A lab of the same name that is up
// already is taken down first, so Up also rebuilds. When Up fails, or ctx is
// cancelled half-way, it removes whatever it had created before returning.
// Missing tools are installed with apt-get first (see Prerequisites).
//
// Labs of other names come up, and go down, at the same time: Up holds the
// machine's lock (see lockRoot) only while it prepares what they share.
func (l *Lab) Up(ctx context.Context) error {
	if err := CheckRoot(); err != nil {
		return err
	}
	if err := Prerequisites(ctx, io.Discard); err != nil {
		return fmt.Errorf("lab %s: prerequisites: %w", l.Name, err)
	}
	unlock, err := l.begin(ctx)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	defer unlock()
	if err := l.up(ctx); err != nil {
		return fmt.Errorf("lab %s: up: %w", l.Name, l.undo(ctx, err, false))
	}
	return nil
}

// begin makes room for the lab and, under the machine's lock, does what
// touches what labs share: it takes a previous lab of the name down,
// records the machine's state, fills the local apt repository, and creates
// the lab's directory and namespaces. It returns holding the lab's lock.
func (l *Lab) begin(ctx context.Context) (unlock func(), err error) {
	for {
		// A lab of the name being built, rebooted or removed elsewhere
		// finishes first.
		unlockPrev, had, err := lockLab(ctx, l.Name)
		if err != nil {
			return nil, err
		}
		unlockRoot, err := lockRoot(ctx)
		if err != nil {
			if had {
				unlockPrev()
			}
			return nil, err
		}
		if _, err := os.Stat(l.Dir); !had && err == nil {
			// Another Up of the name created it meanwhile: wait for it.
			unlockRoot()
			continue
		}
		unlock, err := l.prepare(ctx)
		unlockRoot()
		if had {
			unlockPrev() // of a directory down removed
		}
		return unlock, err
	}
}

// prepare is begin's work under the machine's lock and, when there is a
// previous lab, its lock.
func (l *Lab) prepare(ctx context.Context) (unlock func(), err error) {
	if err := down(l.Name); err != nil {
		return nil, fmt.Errorf("remove the previous lab: %w", err)
	}
	err = checkRootfs()
	if err == nil {
		err = prepareMachine()
	}
	if err == nil {
		if err = ensureRepo(ctx, l.packages()); err != nil {
			err = fmt.Errorf("local apt repository %s: %w", repoDir, err)
		}
	}
	if err == nil {
		unlock, err = lockNewDir(l.Dir)
	}
	if err == nil {
		if err = l.createNetns(ctx); err != nil {
			unlock()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("up: %w", l.undo(ctx, err, true))
	}
	return unlock, nil
}

// undo removes what a failed Up built, and gives back the machine's shared
// pieces if no other lab is left, and returns err, the failure; locked says
// whether the caller holds the machine's lock already. It goes on when ctx
// is cancelled: an interrupted Up leaves nothing behind.
func (l *Lab) undo(ctx context.Context, err error, locked bool) error {
	if ctx.Err() != nil {
		// What failed after the interruption is only its echo.
		err = fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if derr := down(l.Name); derr != nil {
		return errors.Join(err, fmt.Errorf("clean up: %w", derr))
	}
	if !locked {
		// Other labs hold the machine's lock only for short steps (apt's
		// fetches on a fresh machine being the longest).
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		unlock, lerr := lockRoot(lctx)
		if lerr != nil {
			return errors.Join(err, fmt.Errorf("clean up: %w", lerr))
		}
		defer unlock()
	}
	if rerr := releaseMachine(); rerr != nil {
		return errors.Join(err, fmt.Errorf("clean up: %w", rerr))
	}
	return err
}

func (l *Lab) up(ctx context.Context) error {
	authorized, err := l.writeClient()
	if err != nil {
		return fmt.Errorf("write %s: %w", l.Dir, err)
	}
	users := make([]string, len(l.Hosts))
	for i, n := range l.Hosts {
		users[i] = n.User
	}
	acc, err := planAccounts(users)
	if err != nil {
		return err
	}
	m := readMachine(acc)
	if err := os.Mkdir(filepath.Join(l.Dir, "fs"), 0o755); err != nil {
		return err
	}
	known := make([]string, len(l.Hosts))
	for i, n := range l.Hosts {
		if known[i], err = l.writeHost(n); err != nil {
			return fmt.Errorf("host %s: write %s: %w", n.Name, l.hostDir(n), err)
		}
	}
	if err := os.WriteFile(l.KnownHosts, []byte(strings.Join(known, "")), 0o644); err != nil {
		return err
	}
	if err := l.wire(ctx); err != nil {
		return err
	}

	// Filesystem, addresses, routes and sshd, host by host: most of the
	// time goes to starting processes, which overlaps well beyond the
	// number of CPUs.
	pub, prv := l.segments()
	shared := sharedNets(pub, allPrivate(prv))
	nodes := l.nodes()
	errs := make([]error, len(nodes))
	var g errgroup.Group
	g.SetLimit(4 * runtime.NumCPU())
	for i, n := range nodes {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return nil
			}
			if err := configure(ctx, n, pub, prv[n.Site], shared); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
				return nil
			}
			if n.Port == 0 {
				return nil // the controller and the stranger run no sshd
			}
			if err := l.writeRootfs(n, m, authorized); err != nil {
				errs[i] = fmt.Errorf("host %s: write its filesystem in %s: %w", n.Name, l.fsDir(n), err)
				return nil
			}
			if _, err := l.startSSHD(ctx, n, false); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", n.Name, err)
				return nil
			}
			if err := l.provision(ctx, n); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", n.Name, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// createNetns creates every namespace of the lab with one ip(8) process.
func (l *Lab) createNetns(ctx context.Context) error {
	lines := []string{"netns add " + l.Switch}
	for _, n := range l.nodes() {
		lines = append(lines, "netns add "+n.Netns)
	}
	if err := ipBatch(ctx, "", lines); err != nil {
		return fmt.Errorf("create namespaces: %w", err)
	}
	return nil
}

// wire builds the switch: the public bridge, a private bridge per site,
// and a veth pair per interface, whose inner end is created directly in
// its node's namespace under the inventory's interface name.
func (l *Lab) wire(ctx context.Context) error {
	lines := []string{"link add " + publicBridge + " type bridge forward_delay 0", "link set " + publicBridge + " up"}
	for _, site := range l.siteNames() {
		br := l.privateBridge(site)
		lines = append(lines, "link add "+br+" type bridge forward_delay 0", "link set "+br+" up")
	}
	for _, n := range l.nodes() {
		for _, p := range []struct {
			lk     *Link
			bridge string
		}{{n.Public, publicBridge}, {n.Private, l.privateBridge(n.Site)}} {
			if p.lk == nil {
				continue
			}
			lines = append(lines,
				fmt.Sprintf("link add %s type veth peer name %s netns %s", p.lk.Peer, p.lk.Iface, n.Netns),
				fmt.Sprintf("link set %s master %s up", p.lk.Peer, p.bridge))
		}
	}
	if err := ipBatch(ctx, l.Switch, lines); err != nil {
		return fmt.Errorf("wire the switch: %w", err)
	}
	return nil
}

// siteNames are the sites whose private segments the lab has: "" alone
// for an inventory without [sites].
func (l *Lab) siteNames() []string {
	if l.Sites == nil {
		return []string{""}
	}
	return l.Sites
}

// privateBridge names a site's private bridge: privateBridge for the first
// (or only) site, then fwp-prv-s1, fwp-prv-s2...
func (l *Lab) privateBridge(site string) string {
	if i := slices.Index(l.Sites, site); i > 0 {
		return fmt.Sprintf("%s-s%d", privateBridge, i)
	}
	return privateBridge
}

// configure gives a node its addresses and routes and brings its links up.
func configure(ctx context.Context, n *Node, pub, prv []netip.Addr, shared map[netip.Prefix]bool) error {
	lines := []string{"link set lo up"}
	var routes []string
	for _, p := range []struct {
		lk  *Link
		seg []netip.Addr
	}{{n.Public, pub}, {n.Private, prv}} {
		if p.lk == nil {
			continue
		}
		addrs, r := linkConfig(p.lk, p.seg, shared)
		lines = append(lines, addrs...)
		lines = append(lines, "link set "+p.lk.Iface+" up")
		routes = append(routes, r...)
	}
	if err := ipBatch(ctx, n.Netns, append(lines, routes...)); err != nil {
		return fmt.Errorf("addresses and routes: %w", err)
	}
	return nil
}

// ipBatch runs ip(8) commands, one a line, in namespace netns ("" for the
// machine's, used only to create the lab's namespaces). Every word in them
// is a validated name or an address, never free text.
func ipBatch(ctx context.Context, netns string, lines []string) error {
	var args []string
	if netns != "" {
		args = append(args, "-n", netns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.CommandContext(ctx, bin("ip"), args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	// If Up is killed, ip must not go on building a lab nobody will
	// record: down could miss what it adds after down has looked. The
	// kernel sends that signal when the thread that started ip ends, not
	// the process, so the thread stays with this goroutine until ip is
	// done: launch ends threads it used.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	dieWithParent(cmd.SysProcAttr)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, err := output(cmd)
	return err
}

// startSSHD starts a host's sshd in its own root filesystem (see launch)
// and waits until it listens: sshd writes its pid file only after binding
// its sockets. With boot set, the host boots first (see bootScript); what
// the boot printed is in boot.log in the host's directory, and bootErr says
// whether it failed.
func (l *Lab) startSSHD(ctx context.Context, n *Node, boot bool) (bootErr, err error) {
	dir := l.hostDir(n)
	log, err := os.OpenFile(filepath.Join(dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	bootLog, err := os.OpenFile(filepath.Join(dir, "boot.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer bootLog.Close()
	cmd, bootErr, err := l.launch(n, boot, log, bootLog)
	if err != nil {
		return nil, err
	}
	// Waiting for sshd reaps it when down kills it, as long as this
	// process lives (tests); after that init does.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	pidFile := filepath.Join(dir, "sshd.pid")
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if readPid(pidFile) == cmd.Process.Pid {
			return bootErr, nil
		}
		select {
		case <-exited:
			return bootErr, fmt.Errorf("sshd exited: %s", logTail(filepath.Join(dir, "sshd.log")))
		case <-deadline.C:
			return bootErr, fmt.Errorf("sshd did not listen within %s: %s", readyTimeout, logTail(filepath.Join(dir, "sshd.log")))
		case <-ctx.Done():
			return bootErr, ctx.Err()
		case <-tick.C:
		}
	}
}

// provision runs provisionScript in a host that has options needing it.
func (l *Lab) provision(ctx context.Context, n *Node) error {
	o := n.Options
	if !o.NoPersistent && len(o.Packages) == 0 && o.Password == "" {
		return nil
	}
	purge, password := "0", "0"
	if o.NoPersistent {
		purge = "1"
	}
	var stdin string
	if o.Password != "" && n.User != "" {
		password = "1"
		stdin = n.User + ":" + o.Password + "\n"
	}
	args := append([]string{"-c", provisionScript, "provision", purge, password}, o.Packages...)
	cmd, err := l.HostCommand(ctx, n.Name, "/bin/sh", args...)
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	if _, err := output(cmd); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			// The script says nothing; what apt and dpkg said last does.
			ce.Args = []string{"provision"}
			ce.Stderr = lastLines(append(out.Bytes(), ce.Stderr...), 12)
		}
		return err
	}
	return nil
}

// lastLines returns the last n lines of out.
func lastLines(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// logTail returns the last lines of a log, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(no output)"
	}
	return strings.Join(lines, "; ")
}

// CommandError is a command that failed, with what it wrote on stderr.
type CommandError struct {
	Args   []string
	Stderr []byte
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.Join(e.Args, " ") + ": " + e.Err.Error()
	if s := strings.TrimSpace(string(e.Stderr)); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// output runs cmd and returns its stdout; a failure is a *CommandError.
func output(cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Args: cmd.Args, Stderr: stderr.Bytes(), Err: err}
	}
	return stdout.Bytes(), nil
}
