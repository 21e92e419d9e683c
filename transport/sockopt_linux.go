package transport

import (
	"net"
	"syscall"
)

// forceBuffers raises the socket buffers past net.core.rmem_max and
// wmem_max with SO_RCVBUFFORCE and SO_SNDBUFFORCE when the process may
// (CAP_NET_ADMIN, e.g. root); otherwise the capped values set before stay.
func forceBuffers(pc *net.UDPConn, rcv, snd int) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if rcv > 0 {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcv)
		}
		if snd > 0 {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, snd)
		}
	})
}

// socketBuffers returns SO_RCVBUF and SO_SNDBUF as the kernel reports
// them (twice the size asked for, on Linux).
func socketBuffers(pc *net.UDPConn) (rcv, snd int) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	return rcv, snd
}
