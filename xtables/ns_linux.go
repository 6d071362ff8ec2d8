package xtables

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func supported() error { return nil }

// namespaced makes a child start in a new network namespace, and in a new
// user namespace too unless fwpush runs as root: there it is root, with
// the rights over its network namespace that iptables needs, and nothing
// else. The kernel makes the namespaces before the program runs, or the
// program does not run: it can never load into the machine's own. The
// child dies with fwpush.
func namespaced() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if uid := os.Geteuid(); uid != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// namespaceError explains why a load did not start.
func namespaceError(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	switch {
	case os.Geteuid() != 0 && (errno == syscall.EPERM || errno == syscall.EACCES || errno == syscall.ENOSPC || errno == syscall.EINVAL || errno == syscall.EUSERS):
		return fmt.Errorf("this system does not let users make user namespaces (%v; see user.max_user_namespaces, kernel.unprivileged_userns_clone or kernel.apparmor_restrict_unprivileged_userns): run as root to test policies", err)
	case errno == syscall.EPERM || errno == syscall.EACCES:
		return fmt.Errorf("cannot make a network namespace (%v): in a container, that needs CAP_SYS_ADMIN", err)
	}
	return fmt.Errorf("cannot make a network namespace: %w", err)
}
