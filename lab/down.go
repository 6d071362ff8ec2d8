package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// killTimeout bounds how long Down waits for the lab's processes to die.
const killTimeout = 10 * time.Second

// Down removes lab name and everything it left behind: every process in its
// namespaces or started for it, its namespaces (and with them its bridges,
// veths and routes), its directory, and, with the last lab, the mount points
// and state root the lab added to the machine. It finds all of it by name,
// not from the lab's records, so it also cleans up after a crash, a killed
// sshd or an interrupted Up, and it does nothing on a lab that is down.
func Down(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := CheckRoot(); err != nil {
		return err
	}
	if err := remove(ctx, name); err != nil {
		return fmt.Errorf("lab %s: down: %w", name, err)
	}
	return nil
}

// Down removes the lab; see the package function Down.
func (l *Lab) Down(ctx context.Context) error { return Down(ctx, l.Name) }

// remove is Down's work. A lab with a directory is removed under its own
// lock alone (everything down removes is the lab's, found by its name),
// other labs coming and going meanwhile; then, under the machine's lock,
// the machine's shared pieces are given back if no lab is left.
func remove(ctx context.Context, name string) error {
	for {
		unlockLab, had, err := lockLab(ctx, name)
		if err != nil {
			return err
		}
		if had {
			err = down(name)
		}
		unlockRoot, lerr := lockRoot(ctx)
		if lerr != nil {
			if had {
				unlockLab()
			}
			return errors.Join(err, lerr)
		}
		if _, serr := os.Stat(filepath.Join(Root, name)); !had && serr == nil {
			// An Up of the name created it meanwhile: wait for it.
			unlockRoot()
			continue
		}
		if !had {
			// What a lab without a directory may have left.
			err = down(name)
		}
		if err == nil {
			err = releaseMachine()
		}
		unlockRoot()
		if had {
			unlockLab()
		}
		return err
	}
}

// down removes what is lab name's: its processes, its namespaces (and with
// them its bridges, veths and routes) and its directory. The caller holds
// the lab's lock, or the machine's when the lab has no directory.
func down(name string) error {
	dir := filepath.Join(Root, name)
	var errs []error
	if err := killLab(name, dir); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range labNetns(name) {
		p := netnsPath(ns)
		// The kernel destroys a namespace, and its links with it, once
		// nothing holds it: its processes are gone, this was the last mount.
		if err := detach(p); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove namespace %s: %w", ns, err))
		}
	}
	if err := removeLabDir(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// removeLabDir removes a lab's directory, the hosts' filesystems side by
// side: removing files waits on the disk more than on the CPU.
func removeLabDir(dir string) error {
	hosts, _ := os.ReadDir(filepath.Join(dir, "fs"))
	var g errgroup.Group
	g.SetLimit(16)
	for _, h := range hosts {
		g.Go(func() error { return os.RemoveAll(filepath.Join(dir, "fs", h.Name())) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// isLabProc reports whether p belongs to a lab: it is in one of the lab's
// network namespaces, or it is one of the lab's sshd whose namespace is
// already gone.
func isLabProc(p proc, netns map[uint64]bool, dir string) bool {
	if p.pid == os.Getpid() {
		return false
	}
	if p.netns != 0 && netns[p.netns] {
		return true
	}
	hosts := filepath.Join(dir, "hosts") + "/"
	return strings.Contains(p.cmdline, " -f "+hosts)
}

// killLab kills the lab's processes. Children go first, and are given a
// moment to be reaped by their still living parents, so that as few as
// possible are left to init as zombies.
func killLab(name, dir string) error {
	netns := map[uint64]bool{}
	for _, ns := range labNetns(name) {
		if ino := nsInode(netnsPath(ns)); ino != 0 {
			netns[ino] = true
		}
	}
	return killProcs(func(p proc) bool { return isLabProc(p, netns, dir) })
}

// killProcs kills the processes that match, children first (see killLab).
func killProcs(match func(proc) bool) error {
	deadline := time.Now().Add(killTimeout)
	for {
		var live []proc
		in := map[int]bool{}
		for _, p := range procs() {
			if !p.zombie && p.pid != os.Getpid() && match(p) {
				live = append(live, p)
				in[p.pid] = true
			}
		}
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var pids []string
			for _, p := range live {
				pids = append(pids, fmt.Sprintf("%d (%s)", p.pid, p.cmdline))
			}
			return fmt.Errorf("processes survive SIGKILL: %s", strings.Join(pids, ", "))
		}
		var children []int
		for _, p := range live {
			if in[p.ppid] {
				children = append(children, p.pid)
			}
		}
		targets := children
		if len(targets) == 0 {
			for _, p := range live {
				targets = append(targets, p.pid)
			}
		}
		for _, pid := range targets {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		waitGone(targets, 500*time.Millisecond)
	}
}

// waitGone waits until the processes are dead, at most timeout, then a
// little longer for their parents to reap them: a zombie whose parent is
// killed before reaping it goes to init, and some inits never reap.
func waitGone(pids []int, timeout time.Duration) {
	state := func(pid int) byte { // 0 when gone
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := bytes.LastIndexByte(stat, ')')
		if err != nil || i < 0 || i+2 >= len(stat) {
			return 0
		}
		return stat[i+2]
	}
	wait := func(timeout time.Duration, done func(byte) bool) {
		for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			if !slices.ContainsFunc(pids, func(pid int) bool { return !done(state(pid)) }) {
				return
			}
		}
	}
	wait(timeout, func(s byte) bool { return s == 0 || s == 'Z' || s == 'X' })
	wait(50*time.Millisecond, func(s byte) bool { return s == 0 })
}

// The machine's shared pieces. ip(8) turns /run/netns into a mount the
// first time it creates a namespace. machineRecord keeps what the lab
// added, so that the last down restores the machine as it was.
type machineRecord struct {
	// Created lists directories the lab created on the machine (mount
	// points, in labs before hosts had filesystems of their own).
	Created []string `json:"created,omitempty"`
	// NetnsDir and NetnsMount say whether /run/netns existed, and was a
	// mount point, before the first lab.
	NetnsDir   bool `json:"netns_dir"`
	NetnsMount bool `json:"netns_mount"`
}

var machineFile = filepath.Join(Root, ".machine.json")

// prepareMachine records the state of /run/netns before the first lab. It
// runs under the machine's lock.
func prepareMachine() error {
	var rec machineRecord
	data, err := os.ReadFile(machineFile)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("read %s: %w", machineFile, err)
		}
	case errors.Is(err, os.ErrNotExist):
		_, statErr := os.Stat(netnsDir)
		rec.NetnsDir = statErr == nil
		rec.NetnsMount = isMountpoint(netnsDir)
	default:
		return err
	}
	data, err = json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(machineFile, data, 0o600)
}

// releaseMachine undoes prepareMachine once no lab is left: it removes
// /run/netns if the labs brought it, and Root unless it holds the local apt
// repository's cache (kept for the next lab). It runs under the machine's
// lock.
func releaseMachine() error {
	ents, err := os.ReadDir(Root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			return nil // another lab is up
		}
	}
	netns, _ := os.ReadDir(netnsDir)
	for _, e := range netns {
		if strings.HasPrefix(e.Name(), Prefix+"-") {
			return nil // another lab's leftovers: its own down gives back
		}
	}
	var rec machineRecord
	data, err := os.ReadFile(machineFile)
	if err == nil {
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("read %s: %w", machineFile, err)
		}
		for _, dir := range slices.Backward(rec.Created) {
			// Only an empty directory goes: anything put there since is not ours.
			if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("remove mount point %s: %w", dir, err)
			}
		}
		if len(netns) == 0 {
			if !rec.NetnsMount && isMountpoint(netnsDir) {
				if err := detach(netnsDir); err != nil {
					return fmt.Errorf("unmount %s: %w", netnsDir, err)
				}
			}
			if !rec.NetnsDir {
				_ = os.Remove(netnsDir)
			}
		}
	}
	if err := os.Remove(machineFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(Root); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return err
	}
	return nil
}

// isMountpoint reports whether path is a mount point in this process's
// mount namespace.
func isMountpoint(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
					break
				}
				c = c*8 + byte(d-'0')
			}
			if ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
