//go:build !linux

package lab

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// supported says whether this system can run labs at all: fwpush itself
// runs anywhere, its lab only on Linux.
const supported = false

var errUnsupported = errors.New("the lab needs Linux")

func detach(string) error { return errUnsupported }

func setNetns(int) error { return errUnsupported }

func dieWithParent(*syscall.SysProcAttr) {}

func (l *Lab) launch(*Node, bool, *os.File, *os.File) (*exec.Cmd, error, error) {
	return nil, nil, errUnsupported
}
