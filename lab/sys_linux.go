package lab

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// supported says whether this system can run labs at all.
const supported = true

// detach unmounts path lazily.
func detach(path string) error { return unix.Unmount(path, unix.MNT_DETACH) }

// setNetns switches the calling thread into the network namespace of fd.
func setNetns(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) }

// dieWithParent makes a child process die when its parent dies.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
