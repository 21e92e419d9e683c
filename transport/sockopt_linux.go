package transport

import (
	"encoding/binary"
	"net"
	"net/netip"
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

// recvErrors asks the kernel to report ICMP errors (port or host
// unreachable) on an unconnected UDP socket (IP_RECVERR, IPV6_RECVERR):
// the next read then fails with the error, and the socket's error queue
// holds the destination it concerns (see unreachable).
func recvErrors(pc *net.UDPConn) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, 1)
	})
}

// unreachable drains the socket's error queue and returns the
// destinations that ICMP reported unreachable, with the error of each
// (ECONNREFUSED for a port nobody listens on).
func unreachable(pc *net.UDPConn) []unreachableDest {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil
	}
	var out []unreachableDest
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	_ = rc.Read(func(fd uintptr) bool {
		for range 64 {
			_, oobn, _, from, err := syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_ERRQUEUE|syscall.MSG_DONTWAIT)
			if err != nil {
				return true // EAGAIN: the queue is empty
			}
			errno := extendedErrno(oob[:oobn])
			var addr netip.AddrPort
			switch sa := from.(type) {
			case *syscall.SockaddrInet4:
				addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
			case *syscall.SockaddrInet6:
				addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
			}
			if addr.IsValid() && errno != 0 {
				out = append(out, unreachableDest{addr, errno})
			}
		}
		return true
	})
	return out
}

// extendedErrno returns ee_errno of the sock_extended_err in a control
// message of an IP_RECVERR or IPV6_RECVERR read.
func extendedErrno(oob []byte) syscall.Errno {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if (m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_RECVERR) ||
			(m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_RECVERR) {
			if len(m.Data) >= 4 {
				// struct sock_extended_err starts with __u32 ee_errno.
				return syscall.Errno(binary.NativeEndian.Uint32(m.Data[:4]))
			}
		}
	}
	return 0
}
