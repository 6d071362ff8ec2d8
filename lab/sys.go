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

// lockRoot takes the machine-wide lab lock, a flock on Root itself, so that
// labs built and removed at once (parallel test packages) never race on
// what they share: Root and the mount points. The lock leaves no file
// behind; when the last down removes Root while another process waits, the
// waiter finds its directory gone and locks the new one.
func lockRoot(ctx context.Context) (unlock func(), err error) {
	for {
		if err := os.MkdirAll(Root, 0o700); err != nil {
			return nil, fmt.Errorf("lock %s: %w", Root, err)
		}
		fd, err := unix.Open(Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("lock %s: %w", Root, err)
		}
		for {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
				break
			}
			select {
			case <-ctx.Done():
				unix.Close(fd)
				return nil, fmt.Errorf("lock %s: %w", Root, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", Root, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(Root, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() { unix.Close(fd) }, nil
		}
		unix.Close(fd) // Root was removed while we waited: lock the new one
	}
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
