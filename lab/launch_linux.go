package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// launch starts a host's sshd (after the boot script when boot is set) in
// the host's network namespace, a new mount and UTS namespace, on the
// host's root filesystem; sshd's output goes to log, the boot's to bootLog.
// It returns sshd, started, and the boot script's failure.
//
// The namespaces and mounts are made by this process, on an OS thread of
// its own (see onThrowawayThread), and sshd is started from that thread,
// which it takes them from: a dozen mount(8) processes per host would cost
// more than the rest of up.
//
// The new mount namespace starts as a copy of the machine's, made private
// so that nothing mounted in it reaches the machine. The host's root is an
// overlay of the machine's / (lower, read-only: the filesystems mounted on
// it are not part of it) and the host's upper directory, mounted volatile
// (no syncs: the host is thrown away, or rebooted on purpose, never
// crashed). proc, sysfs (which shows the host's interfaces), the machine's
// /dev and fresh tmpfs for /dev/shm, /run and /tmp go into it, as a booted
// server has them. The lab's state root is covered by a tmpfs that holds
// only the host's own directory (its sshd_config, host key and pid file)
// and the local apt repository, read-only, at their paths. pivot_root then
// makes the overlay the namespace's root and the machine's mounts, its
// copies of /run/netns among them (which would keep every lab's namespaces
// alive after their own down), are detached.
func (l *Lab) launch(n *Node, boot bool, log, bootLog *os.File) (sshd *exec.Cmd, bootErr, err error) {
	type result struct {
		sshd         *exec.Cmd
		bootErr, err error
	}
	var r result
	onThrowawayThread(func() {
		r.sshd, r.bootErr, r.err = l.launchOnThread(n, boot, log, bootLog)
	})
	return r.sshd, r.bootErr, r.err
}

// onThrowawayThread runs f on an OS thread locked to it and thrown away
// afterwards, so f may change the thread's namespaces and root. It never
// uses the process's main thread, which the runtime cannot end: it would
// keep a host's namespaces, and the process would see the host's mounts as
// its own.
func onThrowawayThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Hold the main thread here, so that the work goes to another.
			onThrowawayThread(f)
			runtime.UnlockOSThread()
			close(done)
			return
		}
		f()
		close(done)
		// Returning while locked ends the thread.
	}()
	<-done
}

func (l *Lab) launchOnThread(n *Node, boot bool, log, bootLog *os.File) (*exec.Cmd, error, error) {
	ns, err := os.Open(netnsPath(n.Netns))
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, nil, fmt.Errorf("enter %s: %w", n.Netns, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_FS); err != nil {
		return nil, nil, fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, nil, fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Sethostname([]byte(n.Name)); err != nil {
		return nil, nil, fmt.Errorf("hostname: %w", err)
	}
	fs, dir := l.fsDir(n), l.hostDir(n)
	root := filepath.Join(fs, "root")
	in := func(p string) string { return filepath.Join(root, p) }
	const nosuid, nodev, noexec = unix.MS_NOSUID, unix.MS_NODEV, unix.MS_NOEXEC
	steps := []struct {
		source, target, fstype string
		flags                  uintptr
		data                   string
	}{
		{"fwp-root", root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s,workdir=%s,volatile", filepath.Join(fs, "upper"), filepath.Join(fs, "work"))},
		{"fwp-proc", in("/proc"), "proc", nosuid | nodev | noexec, ""},
		{"fwp-sys", in("/sys"), "sysfs", nosuid | nodev | noexec, ""},
		{"/dev", in("/dev"), "", unix.MS_BIND | unix.MS_REC, ""},
		{"fwp-shm", in("/dev/shm"), "tmpfs", nosuid | nodev, "mode=1777"},
		{"fwp-run", in("/run"), "tmpfs", nosuid | nodev, "mode=0755,size=64m"},
		{"fwp-tmp", in("/tmp"), "tmpfs", nosuid | nodev, "mode=1777"},
		{"fwp-lab", in(Root), "tmpfs", nosuid | nodev, "mode=0755,size=1m"},
		{dir, in(dir), "", unix.MS_BIND, ""},
		{repoDir, in(repoDir), "", unix.MS_BIND, ""},
		{"", in(repoDir), "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | nosuid | nodev, ""},
	}
	for _, m := range steps {
		if m.source == dir || m.source == repoDir {
			if err := os.MkdirAll(m.target, 0o755); err != nil {
				return nil, nil, err
			}
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return nil, nil, fmt.Errorf("mount %s on %s: %w", m.source, m.target, err)
		}
	}
	if err := os.Mkdir(in("/run/sshd"), 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(in("/run/utmp"), utmp(), 0o664); err != nil {
		return nil, nil, err
	}
	if err := unix.Chdir(root); err != nil {
		return nil, nil, err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return nil, nil, fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return nil, nil, fmt.Errorf("detach the machine's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return nil, nil, err
	}

	var bootErr error
	if boot {
		b := exec.Command("/bin/sh", "-c", bootScript, "boot")
		b.Stdout, b.Stderr = bootLog, bootLog
		bootErr = b.Run()
	}
	// Not tied to a context: sshd outlives Up. It gets a session of its
	// own so that a terminal's ^C never reaches it. -r: each connection is
	// served by a fork of this sshd, not a fresh sshd exec'd and linked
	// again, its configuration and host key read again (a hardening, new
	// addresses for each connection, that a lab has no use for): the
	// lab's end-to-end tests open thousands of connections.
	sshd := exec.Command(bin("sshd"), "-D", "-e", "-r", "-f", filepath.Join(dir, "sshd_config"))
	sshd.Stdout, sshd.Stderr = log, log
	sshd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sshd.Start(); err != nil {
		return nil, bootErr, fmt.Errorf("start sshd: %w", err)
	}
	return sshd, bootErr, nil
}
