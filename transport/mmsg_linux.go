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
// until the socket is readable. The socket is non-blocking, so the
// system call returns at once and is made raw: without the runtime's
// entersyscall, which (when every P was idle, as between two messages of
// a lightly loaded server) wakes the runtime's monitor thread and resets
// it to polling every 20 µs: a tenth of the CPU of a UAS at 8000 calls/s
// went to that thread waking and sleeping (bench/results).
func (m *mmsgReader) recvmmsg(fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hs[0])), uintptr(m.vlen), 0, 0, 0)
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

// mmsgWriter sends datagrams on a socket's RawConn with one sendmmsg per
// batch (sendto for a lone datagram), the destinations written as the
// kernel's sockaddrs in its scratch: unlike x/net's WriteBatch and
// net.UDPConn's WriteTo, a write allocates nothing once the scratch has
// grown. Its system calls are raw, as recvmmsg's are (the socket is
// non-blocking; EAGAIN waits on the poller). It is used under
// udpSock.wmu.
type mmsgWriter struct {
	rc    syscall.RawConn
	inet6 bool // an AF_INET6 socket: every destination as a sockaddr_in6
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	// The arguments and results of the write in progress, for writeFn.
	vlen    int
	sent    int
	errno   syscall.Errno
	writeFn func(fd uintptr) bool
	// The last IPv6 zone sent to, and its interface index.
	zone  string
	scope uint32
}

// newMmsgWriter returns a writer for uc, or nil when its RawConn or its
// address family is not available.
func newMmsgWriter(uc *net.UDPConn) *mmsgWriter {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	domain := -1
	if err := rc.Control(func(fd uintptr) {
		domain, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || (domain != unix.AF_INET && domain != unix.AF_INET6) {
		return nil
	}
	w := &mmsgWriter{rc: rc, inet6: domain == unix.AF_INET6}
	w.writeFn = w.sendmmsg
	return w
}

// sendmmsg is the RawConn.Write callback: false asks the poller to wait
// until the socket is writable.
func (w *mmsgWriter) sendmmsg(fd uintptr) bool {
	for {
		var n uintptr
		var errno syscall.Errno
		if w.vlen == 1 {
			h := &w.hs[0].hdr
			n, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(w.iovs[0].Base)), uintptr(w.iovs[0].Len), 0,
				uintptr(unsafe.Pointer(h.Name)), uintptr(h.Namelen))
			if errno == 0 {
				n = 1
			}
		} else {
			n, _, errno = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hs[0])), uintptr(w.vlen), 0, 0, 0)
		}
		switch errno {
		case 0:
			w.sent, w.errno = int(n), 0
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			w.sent, w.errno = 0, errno
		}
		return true
	}
}

// write sends bufs[i] to to[i] and returns how many went, with
// sendmmsg's semantics: the datagrams before the first that failed, or
// (0, the error of the first). The error is a *net.OpError around a
// *os.SyscallError (net.ErrClosed once the socket closed).
func (w *mmsgWriter) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	vlen := len(bufs)
	if vlen == 0 {
		return 0, nil
	}
	if len(w.hs) < vlen {
		w.hs = make([]mmsghdr, vlen)
		w.iovs = make([]unix.Iovec, vlen)
		w.names = make([]unix.RawSockaddrInet6, vlen)
	}
	for i := range vlen {
		namelen, err := w.sockaddr(&w.names[i], to[i])
		if err != nil {
			if i == 0 {
				return 0, &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(to[i]), Err: err}
			}
			vlen = i // send those before it; it fails first in the next write
			break
		}
		iov := &w.iovs[i]
		iov.Base = unsafe.SliceData(bufs[i])
		iov.SetLen(len(bufs[i]))
		h := &w.hs[i]
		h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&w.names[i])), Namelen: namelen, Iov: iov}
		h.hdr.SetIovlen(1)
		h.len = 0
	}
	w.vlen, w.sent, w.errno = vlen, 0, 0
	err := w.rc.Write(w.writeFn)
	sent := w.sent
	for i := range vlen {
		w.iovs[i].Base = nil // no reference to the caller's buffers
	}
	if err == nil && w.errno != 0 {
		name := "sendmmsg"
		if vlen == 1 {
			name = "sendto"
		}
		err = os.NewSyscallError(name, w.errno)
	}
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(to[0]), Err: err}
	}
	return sent, nil
}

// sockaddr writes to as the socket's family has it into sa and returns
// its length.
func (w *mmsgWriter) sockaddr(sa *unix.RawSockaddrInet6, to netip.AddrPort) (uint32, error) {
	a := to.Addr()
	if !a.IsValid() {
		return 0, os.NewSyscallError("sendto", unix.EDESTADDRREQ)
	}
	port := to.Port()
	if !w.inet6 {
		if a.Is4In6() {
			a = a.Unmap()
		}
		if !a.Is4() {
			return 0, os.NewSyscallError("sendto", unix.EAFNOSUPPORT)
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet4, nil
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	if zone := a.Zone(); zone != "" {
		sa.Scope_id = w.scopeOf(zone)
	}
	return unix.SizeofSockaddrInet6, nil
}

// scopeOf returns the interface index of an IPv6 zone: an interface's
// name, or an index in decimal (0 when it is neither).
func (w *mmsgWriter) scopeOf(zone string) uint32 {
	if zone == w.zone {
		return w.scope
	}
	var scope uint32
	if ifi, err := net.InterfaceByName(zone); err == nil {
		scope = uint32(ifi.Index)
	} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		scope = uint32(n)
	}
	w.zone, w.scope = zone, scope
	return scope
}
