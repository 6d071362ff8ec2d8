package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Reboot restarts host as a server reboots, to prove that what it persisted
// comes back: every process of the host ends (its sshd, the sessions, a
// rollback guard waiting), the kernel forgets its rules (no rules, every
// policy ACCEPT, both families), and the host comes up again on its own
// filesystem, with fresh /run and /tmp, running what boot runs before sshd
// starts: netfilter-persistent start when it is installed and enabled
// (nftables and ufw likewise). Its addresses, host key and everything on
// its disk stay. A boot service that fails makes Reboot fail with its
// output; the host is up all the same, as after a real boot.
func (l *Lab) Reboot(ctx context.Context, host string) error {
	n, err := l.Host(host)
	if err != nil {
		return err
	}
	if err := CheckRoot(); err != nil {
		return err
	}
	// The host is the lab's alone: other labs go on meanwhile.
	unlock, ok, err := lockLab(ctx, l.Name)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if ok {
		defer unlock()
	}
	if _, err := Open(l.Name); err != nil {
		return err
	}
	if err := l.reboot(ctx, n); err != nil {
		return fmt.Errorf("lab %s: host %s: reboot: %w", l.Name, n.Name, err)
	}
	return nil
}

func (l *Lab) reboot(ctx context.Context, n *Node) error {
	ino := nsInode(netnsPath(n.Netns))
	if ino == 0 {
		return fmt.Errorf("namespace %s is missing (bring the lab up again)", n.Netns)
	}
	dir := l.hostDir(n) + "/"
	err := killProcs(func(p proc) bool {
		return p.netns == ino || strings.Contains(p.cmdline, " -f "+dir)
	})
	if err != nil {
		return err
	}
	// The overlay went with the last process of its mount namespace. It
	// was mounted volatile (no syncs) and marks its work directory so that
	// a remount after a crash fails; this was no crash.
	if err := os.RemoveAll(filepath.Join(l.fsDir(n), "work", "work", "incompat")); err != nil {
		return err
	}
	bootErr, err := l.startSSHD(ctx, n, true)
	if err != nil {
		return err
	}
	if bootErr != nil {
		return fmt.Errorf("boot: %w: %s", bootErr, logTail(filepath.Join(l.hostDir(n), "boot.log")))
	}
	return nil
}

// BootLog returns what host's last reboot printed: which boot services ran
// and their output.
func (l *Lab) BootLog(host string) (string, error) {
	n, err := l.Host(host)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(l.hostDir(n), "boot.log"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(data), err
}
