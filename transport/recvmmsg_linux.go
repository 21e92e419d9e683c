//go:build linux

package transport

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is the kernel's struct mmsghdr: one message of a recvmmsg.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgReader reads a batch of datagrams with one recvmmsg on the socket's
// RawConn and turns each source address into a netip.AddrPort in place:
// unlike x/net's ReadBatch (a *net.UDPAddr per datagram), a read
// allocates nothing once the scratch has grown to the reader's slots.
// It is used by the one reader goroutine of a socket.
type mmsgReader struct {
	rc    syscall.RawConn
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for an IPv4 or IPv6 source
	// The arguments and results of the read in progress, for readFn
	// (built once: a method value passed to RawConn.Read would be
	// allocated on every read).
	vlen   int
	got    int
	err    error
	readFn func(fd uintptr) bool
	// The zone of the last IPv6 source with a scope ID, which is
	// looked up by interface index.
	scope uint32
	zone  string
}

// newMmsgReader returns a reader for uc, or nil when its RawConn is not
// available.
func newMmsgReader(uc *net.UDPConn) *mmsgReader {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	m := &mmsgReader{rc: rc}
	m.readFn = m.recvmmsg
	return m
}

// recvmmsg is the RawConn.Read callback: false asks the poller to wait
// until the socket is readable.
func (m *mmsgReader) recvmmsg(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hs[0])), uintptr(m.vlen), 0, 0, 0)
		switch errno {
		case 0:
			m.got, m.err = int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			m.got, m.err = 0, os.NewSyscallError("recvmmsg", errno)
		}
		return true
	}
}

// read reads up to len(bufs) datagrams into bufs, their lengths into n
// and their sources into src. Its errors are those of
// x/net's ReadBatch: net.ErrClosed once the socket closes, a timeout at
// the read deadline, and a *os.SyscallError (ENOSYS where the system
// lacks recvmmsg, ECONNREFUSED after an ICMP error).
func (m *mmsgReader) read(bufs [][]byte, n []int, src []netip.AddrPort) (int, error) {
	vlen := len(bufs)
	if len(m.hs) < vlen {
		m.hs = make([]mmsghdr, vlen)
		m.iovs = make([]unix.Iovec, vlen)
		m.names = make([]unix.RawSockaddrInet6, vlen)
	}
	for i := range vlen {
		iov := &m.iovs[i]
		iov.Base = &bufs[i][0]
		iov.SetLen(len(bufs[i]))
		h := &m.hs[i]
		h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&m.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: iov}
		h.hdr.SetIovlen(1)
		h.len = 0
	}
	m.vlen, m.got, m.err = vlen, 0, nil
	err := m.rc.Read(m.readFn)
	got := m.got
	for i := range vlen {
		m.iovs[i].Base = nil // the slots may be dropped (see shrink)
	}
	if err == nil {
		err = m.err
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "udp", Err: err}
	}
	for i := range got {
		n[i] = int(m.hs[i].len)
		src[i] = m.source(&m.names[i], m.hs[i].hdr.Namelen)
	}
	return got, nil
}

// source converts a source address written by the kernel; an unknown
// family gives the zero AddrPort.
func (m *mmsgReader) source(sa *unix.RawSockaddrInet6, namelen uint32) netip.AddrPort {
	port := func(p uint16) uint16 {
		b := (*[2]byte)(unsafe.Pointer(&p))
		return uint16(b[0])<<8 | uint16(b[1])
	}
	switch {
	case sa.Family == unix.AF_INET && namelen >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port))
	case sa.Family == unix.AF_INET6 && namelen >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port(sa.Port))
		}
		if sa.Scope_id != 0 {
			a = a.WithZone(m.zoneOf(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port(sa.Port))
	}
	return netip.AddrPort{}
}

// zoneOf names an IPv6 scope: its interface's name, or the index in
// decimal when there is no such interface (as net.UDPAddr has it).
func (m *mmsgReader) zoneOf(scope uint32) string {
	if scope == m.scope && m.zone != "" {
		return m.zone
	}
	zone := strconv.FormatUint(uint64(scope), 10)
	if ifi, err := net.InterfaceByIndex(int(scope)); err == nil {
		zone = ifi.Name
	}
	m.scope, m.zone = scope, zone
	return zone
}
