package transport

import (
	"net"
	"syscall"
)

const quickAckSupported = true

// quickAck leaves delayed acknowledgements off on c until the kernel turns
// them on again by itself, which it does after some reads: hence once per
// read.
func quickAck(c *net.TCPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
