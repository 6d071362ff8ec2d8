package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotRoot is returned when the lab is used without root.
var ErrNotRoot = errors.New("the lab needs root: it creates network namespaces and runs sshd (run it with sudo)")

// CheckRoot reports whether this process can build labs: it must be root,
// on a kernel with network namespaces.
func CheckRoot() error {
	if !supported {
		return errors.New("the lab needs Linux: it is built of network namespaces")
	}
	if geteuid() != 0 {
		return ErrNotRoot
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("this kernel has no network namespaces: %w", err)
	}
	return nil
}

// geteuid is os.Geteuid, replaced by tests that play an ordinary user.
var geteuid = os.Geteuid

// netnsDir is where ip(8) keeps named network namespaces.
const netnsDir = "/run/netns"

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// tools are the programs the lab runs, with the Debian package of each.
var tools = []struct{ name, pkg string }{
	{"sshd", "openssh-server"},
	{"iptables", "iptables"},
	{"ip", "iproute2"},
	{"nsenter", "util-linux"},
	{"unshare", "util-linux"},
	{"mount", "mount"},
	{"umount", "mount"},
	{"pivot_root", "util-linux"},
	{"dpkg-deb", "dpkg"},
	{"chpasswd", "passwd"},
	// The hosts' login users become root with it; the hosts run the
	// machine's programs.
	{"sudo", "sudo"},
}

// sbinDirs are searched after PATH: sudo and cron often leave the sbin
// directories out, and that is where sshd and ip live.
var sbinDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// bin returns the path of a program, or its bare name when it cannot be
// found so that running it fails with exec's own message.
func bin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// missingPackages lists the packages of the tools that cannot be found.
func missingPackages() []string {
	var pkgs []string
	for _, t := range tools {
		if !filepath.IsAbs(bin(t.name)) && !slices.Contains(pkgs, t.pkg) {
			pkgs = append(pkgs, t.pkg)
		}
	}
	return pkgs
}

// Prerequisites installs with apt-get whatever the lab needs and is
// missing; apt's output goes to out. It does nothing when all is there.
func Prerequisites(ctx context.Context, out io.Writer) error {
	pkgs := missingPackages()
	if len(pkgs) == 0 {
		return nil
	}
	apt := bin("apt-get")
	if !filepath.IsAbs(apt) {
		return fmt.Errorf("the lab needs %s and there is no apt-get to install them: install them and retry", strings.Join(pkgs, ", "))
	}
	fmt.Fprintf(out, "lab: installing %s\n", strings.Join(pkgs, " "))
	install := func() error {
		args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
		return runApt(ctx, out, apt, args...)
	}
	if err := install(); err != nil {
		// A fresh machine often has no package lists yet.
		if uerr := runApt(ctx, out, apt, "update"); uerr != nil {
			return fmt.Errorf("install %s: %w (apt-get update: %v)", strings.Join(pkgs, " "), err, uerr)
		}
		if err := install(); err != nil {
			return fmt.Errorf("install %s: %w", strings.Join(pkgs, " "), err)
		}
	}
	if still := missingPackages(); len(still) > 0 {
		return fmt.Errorf("installed %s but still missing tools of %s", strings.Join(pkgs, " "), strings.Join(still, " "))
	}
	return nil
}

func runApt(ctx context.Context, out io.Writer, apt string, args ...string) error {
	cmd := exec.CommandContext(ctx, apt, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

// Labs take two kinds of lock, both flocks on directories, which leave no
// file behind:
//
//   - the machine's (lockRoot), a flock on Root itself, for what labs
//     share: Root, the record of the machine's state, the local apt
//     repository, /run/netns, and whether any lab is left;
//   - each lab's own (lockLab), a flock on its directory, for the lab:
//     Up builds it, Down removes it and Reboot restarts a host under it.
//
// So labs come up, go down and reboot hosts side by side (tests of several
// packages, and tests within one), and wait for one another only for the
// short steps on what they share. A lab's lock is taken before the
// machine's, and no one waits for a lab's lock while holding the
// machine's: Up takes the lock of the directory it has just created under
// the machine's, which no one else can know of yet.

// lockRoot takes the machine-wide lab lock. When the last down removes Root
// while another process waits, the waiter finds its directory gone and
// locks the new one.
func lockRoot(ctx context.Context) (unlock func(), err error) {
	for {
		if err := os.MkdirAll(Root, 0o700); err != nil {
			return nil, fmt.Errorf("lock %s: %w", Root, err)
		}
		unlock, ok, err := lockDir(ctx, Root)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", Root, err)
		}
		if ok {
			return unlock, nil
		}
	}
}

// lockLab takes the lock of lab name, waiting for whoever holds it. It
// returns ok false, and holds nothing, when the lab has no directory: no
// lab of the name is up or being built (an Up creates the directory under
// the machine's lock, so the caller that must be sure takes that lock and
// looks again). A directory removed while waiting is no lab any more.
func lockLab(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	dir := filepath.Join(Root, name)
	unlock, ok, err = lockDir(ctx, dir)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", dir, err)
	}
	return unlock, ok, nil
}

// lockDir takes an exclusive flock on directory dir, waiting as long as ctx
// lets it. ok is false, and nothing is held, when dir does not exist or was
// removed while waiting.
func lockDir(ctx context.Context, dir string) (unlock func(), ok bool, err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			break
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	if !sameDir(fd, dir) {
		unix.Close(fd)
		return nil, false, nil
	}
	return func() { unix.Close(fd) }, true, nil
}

// lockNewDir creates directory dir and locks it without waiting: no one
// else knows of it yet.
func lockNewDir(dir string) (unlock func(), err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// sameDir reports whether fd is still the directory at path.
func sameDir(fd int, path string) bool {
	var held, now unix.Stat_t
	return unix.Fstat(fd, &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev
}

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	zombie    bool
	netns     uint64
	cmdline   string
}

// procs lists the machine's processes. Processes that exit while being
// read are left out.
func procs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p := proc{pid: pid}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold anything, even ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		p.zombie = f[0] == "Z" || f[0] == "X"
		p.ppid, _ = strconv.Atoi(f[1])
		p.netns = nsInode(fmt.Sprintf("/proc/%d/ns/net", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.cmdline = string(bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '}))
		out = append(out, p)
	}
	return out
}

// nsInode returns the inode of a namespace file (/proc/PID/ns/net or a
// bind mount of one), 0 when it cannot be read.
func nsInode(path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	return st.Ino
}

// labNetns lists the named network namespaces of lab name.
func labNetns(name string) []string {
	ents, _ := os.ReadDir(netnsDir)
	var out []string
	for _, e := range ents {
		for _, p := range netnsPrefixes(name) {
			if strings.HasPrefix(e.Name(), p) {
				out = append(out, e.Name())
				break
			}
		}
	}
	return out
}

// memory is the resident memory of processes, in bytes: RSS counts shared
// pages once per process, PSS shares them out and sums to what the
// processes really cost.
type memory struct{ rss, pss uint64 }

func procMemory(pid int) memory {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memory{}
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			m.rss = kb * 1024
		case "Pss:":
			m.pss = kb * 1024
		}
	}
	return m
}

// readPid reads a pid file; 0 when there is none.
func readPid(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// alive reports whether pid runs (and is not a zombie) with a command line
// that contains want.
func alive(pid int, want string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmd, []byte(want))
}
