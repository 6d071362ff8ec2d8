//go:build !linux

package transport

import "net"

const quickAckSupported = false

func quickAck(*net.TCPConn) {}
